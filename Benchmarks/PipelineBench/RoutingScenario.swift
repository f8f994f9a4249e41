import CommandPipeline
import Foundation

/// The router (issue 25): what the routing decision adds per call, and throughput with one of
/// three deployments dead against all three healthy.
func routingScenario(commands: Int) async -> [Figure] {
    // 1. Decision cost: the same commands straight to the mock, and through a router of three mock
    // deployments — the same engine configuration but for the router, the same prompts.
    let mock = MockProvider.make(MockConfiguration())
    var plainConfiguration = routerConfiguration(["a": mock, "b": mock, "c": mock], maxConcurrency: nil)
    plainConfiguration.router = nil
    let plain = configuredEngine(provider: mock, configuration: plainConfiguration)
    let routed = configuredEngine(provider: mock, configuration: routerConfiguration(["a": mock, "b": mock, "c": mock], maxConcurrency: nil))
    // `ROUTING_ONLY=plain|routed`: only that half of the decision measurement, nothing else — for
    // `perf record` or `/usr/bin/time` of one half at a time.
    switch ProcessInfo.processInfo.environment["ROUTING_ONLY"] {
    case "plain":
        let seconds = await run(plain, commands: commands, model: "mock", inFlight: 1).seconds
        return [Figure(scenario: "routing", metric: "plain_only", value: seconds / Double(commands) * 1e6, unit: "µs/call", goal: .none)]
    case "routed":
        let seconds = await run(routed, commands: commands, model: "fast", inFlight: 1).seconds
        return [Figure(scenario: "routing", metric: "routed_only", value: seconds / Double(commands) * 1e6, unit: "µs/call", goal: .none)]
    default: break
    }
    _ = await run(plain, commands: commands / 10, model: "mock", inFlight: 1)
    _ = await run(routed, commands: commands / 10, model: "fast", inFlight: 1)
    // Interleaved rounds (`ROUTING_ROUNDS`, 5), plain then routed, each pair's difference per
    // call, in wall time and in the process's CPU time (user + sys, every thread); the medians.
    // On a shared machine the CPU figure is the one to read: another process's load moves the
    // wall clock of a run, much less its own CPU time.
    let rounds = max(1, min(50, Int(ProcessInfo.processInfo.environment["ROUTING_ROUNDS"] ?? "") ?? 5))
    var wall: [Double] = [], cpu: [Double] = []
    for _ in 0..<rounds {
        let cpu0 = processCPUSeconds()
        let plainSeconds = await run(plain, commands: commands, model: "mock", inFlight: 1).seconds
        let cpu1 = processCPUSeconds()
        let routedSeconds = await run(routed, commands: commands, model: "fast", inFlight: 1).seconds
        let cpu2 = processCPUSeconds()
        wall.append((routedSeconds - plainSeconds) / Double(commands) * 1e6)
        cpu.append(((cpu2 - cpu1) - (cpu1 - cpu0)) / Double(commands) * 1e6)
    }
    let perCall = max(0, median(wall)), perCallCPU = max(0, median(cpu))

    // 2. Three deployments answering in 5 ms, each taking 32 calls at once; then one of them dead.
    let slow = MockProvider.make(MockConfiguration(latency: .milliseconds(5)))
    let healthy = configuredEngine(provider: mock, configuration: routerConfiguration(["a": slow, "b": slow, "c": slow], maxConcurrency: 32))
    let oneDead = configuredEngine(provider: mock, configuration: routerConfiguration(["a": slow, "b": slow, "c": DeadProvider()], maxConcurrency: 32))
    let n = max(960, commands / 20)
    let all = await run(healthy, commands: n, model: "fast", inFlight: 96)
    let degraded = await run(oneDead, commands: n, model: "fast", inFlight: 96)
    let ratio = (Double(n) / degraded.seconds) / (Double(n) / all.seconds)
    return [
        Figure(scenario: "routing", metric: "decision_cost", value: perCall, unit: "µs/call", goal: .atMost(1)),
        Figure(scenario: "routing", metric: "decision_cost_cpu", value: perCallCPU, unit: "µs/call", goal: .atMost(1)),
        Figure(scenario: "routing", metric: "throughput_all_healthy", value: Double(n) / all.seconds, unit: "commands/s", goal: .none),
        Figure(scenario: "routing", metric: "throughput_one_dead", value: Double(n) / degraded.seconds, unit: "commands/s", goal: .none),
        Figure(scenario: "routing", metric: "one_dead_vs_all_healthy", value: ratio, unit: "ratio", goal: .atLeast(0.6)),
        Figure(scenario: "routing", metric: "failed_with_one_dead", value: Double(degraded.failed), unit: "count", goal: .exactly(0)),
    ]
}

/// A deployment that refuses every connection.
private struct DeadProvider: GenerationCapability {
    var providerName: String { "dead" }
    func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        throw APIError(.providerError, "connection refused", retryable: true, code: "connection_failed")
    }
}

private func routerConfiguration(_ adapters: [String: any GenerationCapability], maxConcurrency: Int?) -> EngineConfiguration {
    let deployments = adapters.keys.sorted().map { Deployment(name: $0, provider: "mock", model: "mock", maxConcurrency: maxConcurrency) }
    var configuration = EngineConfiguration(maxConcurrentCalls: 1, retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(4)))
    do {
        configuration.router = try Router(configuration: RouterConfiguration(models: ["fast": deployments]), adapters: adapters, seed: 1)
    } catch {
        FileHandle.standardError.write(Data("PipelineBench: \(error.message)\n".utf8))
        exit(2)
    }
    return configuration
}

private func run(_ engine: PipelineEngine, commands: Int, model: String, inFlight: Int) async -> (seconds: Double, failed: Int) {
    let clock = ContinuousClock()
    let start = clock.now
    var failed = 0
    await withTaskGroup(of: Bool.self) { group in
        var next = 0
        func launch() {
            let command = PlannedCommand(id: "c\(next)", plan: ExecutionPlan(call: APICall(model: model, parts: [.text("prompt \(next)")])))
            group.addTask { await engine.run(command).succeeded }
            next += 1
        }
        while next < min(inFlight, commands) { launch() }
        for await ok in group {
            if !ok { failed += 1 }
            if next < commands { launch() }
        }
    }
    return ((clock.now - start).seconds, failed)
}

/// The process's CPU time so far (user + sys, all threads), in seconds.
private func processCPUSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

private func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}
