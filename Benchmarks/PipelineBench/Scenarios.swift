import CommandPipeline
import Foundation

/// The engine's own cost per single-call command on the zero-latency mock.
func overheadScenario(commands: Int) async -> [Figure] {
    let engine = PipelineEngine(provider: MockProvider.make())
    let batch = 1000
    let batches = max(1, commands / batch)
    let prepared = (0..<batch).map { i in
        PlannedCommand(id: "c\(i)", plan: ExecutionPlan(call: APICall(model: "mock", parts: [.text("Summarise document \(i) in one line.")])))
    }
    // Warm up.
    for command in prepared { _ = await engine.executeWithFallback(command) }
    var perCommand: [Double] = []
    let clock = ContinuousClock()
    var failures = 0
    for _ in 0..<batches {
        let start = clock.now
        for command in prepared {
            if case .failure = await engine.executeWithFallback(command) { failures += 1 }
        }
        perCommand.append((clock.now - start).microseconds / Double(batch))
    }
    perCommand.sort()
    return [
        Figure(scenario: "overhead", metric: "median_cost_per_command", value: perCommand[perCommand.count / 2], unit: "us", goal: .atMost(1.5)),   // issue 12 item 4 (seed 002 asked for 5)
        Figure(scenario: "overhead", metric: "p99_batch_cost_per_command", value: perCommand[min(perCommand.count - 1, perCommand.count * 99 / 100)], unit: "us", goal: .none),
        Figure(scenario: "overhead", metric: "commands", value: Double(batches * batch), unit: "count", goal: .none),
        Figure(scenario: "overhead", metric: "failures", value: Double(failures), unit: "count", goal: .exactly(0)),
    ]
}

/// One plan of many calls with real (sleeping) latency, fanned out at a fixed concurrency.
func fanoutScenario(calls: Int, latencyMs: Int, concurrency: Int) async -> [Figure] {
    let engine = configuredEngine(
        provider: MockProvider.make(MockConfiguration(latency: .milliseconds(latencyMs))),
        configuration: EngineConfiguration(maxConcurrentCalls: concurrency))
    let plan = ExecutionPlan(calls: (0..<calls).map { APICall(model: "mock", parts: [.text("call \($0)")]) })
    let clock = ContinuousClock()
    let start = clock.now
    let result = await engine.execute(PlannedCommand(id: "fanout", plan: plan))
    let measured = (clock.now - start).seconds
    let ideal = (Double(calls) / Double(concurrency)).rounded(.up) * Double(latencyMs) / 1000
    let responses = (try? result.get())?.responses.count ?? 0
    return [
        Figure(scenario: "fanout", metric: "efficiency", value: ideal / measured, unit: "ratio", goal: .atLeast(0.9)),
        Figure(scenario: "fanout", metric: "wall_time", value: measured * 1000, unit: "ms", goal: .none),
        Figure(scenario: "fanout", metric: "ideal_time", value: ideal * 1000, unit: "ms", goal: .none),
        Figure(scenario: "fanout", metric: "responses", value: Double(responses), unit: "count", goal: .exactly(Double(calls))),
    ]
}

/// Distinct files uploaded by one command with real upload latency.
func uploadsScenario(files: Int, latencyMs: Int) async -> [Figure] {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-bench-\(ProcessInfo.processInfo.processIdentifier)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let parts: [APIPart] = (0..<files).map { i in
        let url = dir.appendingPathComponent("file-\(i).txt")
        try? Data("contents of file \(i)\n".utf8).write(to: url)
        return .filePlaceholder(FilePlaceholder(path: url.path))
    }
    let engine = PipelineEngine(provider: MockProvider.make(MockConfiguration(uploadLatency: .milliseconds(latencyMs))))
    let command = PlannedCommand(id: "uploads", plan: ExecutionPlan(calls: [APICall(model: "mock", parts: [.text("compare")])], sharedParts: parts))
    let clock = ContinuousClock()
    let start = clock.now
    let result = await engine.execute(command)
    let wall = (clock.now - start).seconds
    let performed = (try? result.get())?.telemetry.uploads.performed ?? 0
    return [
        Figure(scenario: "uploads", metric: "wall_over_one_upload", value: wall / (Double(latencyMs) / 1000), unit: "ratio", goal: .atMost(1.3)),
        Figure(scenario: "uploads", metric: "uploads_performed", value: Double(performed), unit: "count", goal: .exactly(Double(files))),
    ]
}

/// Many concurrent commands sharing one context: the cache is created once.
func cacheScenario(commands: Int) async -> [Figure] {
    let engine = PipelineEngine(provider: MockProvider.make(MockConfiguration(cacheLatency: .milliseconds(20))))
    let shared: [APIPart] = [.text(String(repeating: "A long shared document. ", count: 200))]
    let outcomes = await withTaskGroup(of: Result<FinalizedCommand, APIError>.self) { group in
        for i in 0..<commands {
            let command = PlannedCommand(
                id: "c\(i)", plan: ExecutionPlan(calls: [APICall(model: "mock", parts: [.text("question \(i)")])], sharedParts: shared, cache: CachePlan()))
            group.addTask { await engine.execute(command) }
        }
        var all: [Result<FinalizedCommand, APIError>] = []
        for await outcome in group { all.append(outcome) }
        return all
    }
    let telemetry = outcomes.compactMap { try? $0.get() }.compactMap(\.telemetry.cache)
    return [
        Figure(scenario: "cache", metric: "caches_created", value: Double(telemetry.filter(\.created).count), unit: "count", goal: .exactly(1)),
        Figure(scenario: "cache", metric: "commands_reusing", value: Double(telemetry.filter(\.reused).count), unit: "count", goal: .exactly(Double(commands - 1))),
    ]
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var microseconds: Double { seconds * 1e6 }
}

/// An engine of a scenario's configuration; one out of range (a bad argument) ends the run with its message.
func configuredEngine(provider: any GenerationCapability, configuration: EngineConfiguration) -> PipelineEngine {
    do {
        return try PipelineEngine(provider: provider, configuration: configuration)
    } catch {
        FileHandle.standardError.write(Data("PipelineBench: \(error.message)\n".utf8))
        exit(2)
    }
}
