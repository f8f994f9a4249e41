import CommandPipeline
import Foundation

/// Where the `overhead` scenario's time goes: the same single-call commands through engines with
/// fewer stages and units, each median per command, and a few primitives on their own. The
/// differences between rows are what each piece costs (the rows are measured one after another,
/// so compare them within one run).
func partsScenario() async -> [Figure] {
    let provider = MockProvider.make()
    let clock = SystemClock()
    let commands = (0..<1000).map { i in
        PlannedCommand(id: "c\(i)", plan: ExecutionPlan(call: APICall(model: "mock", parts: [.text("Summarise document \(i) in one line.")])))
    }
    let defaults = EngineConfiguration()
    let calls = defaults.callChain(retrier: Retrier(policy: defaults.retryPolicy, clock: clock))
    let engines: [(String, PipelineEngine)] = [
        ("engine_without_stages_or_units", PipelineEngine(provider: provider, stages: [], clock: clock, units: [])),
        ("plus_validation", PipelineEngine(provider: provider, stages: [], clock: clock)),
        ("plus_telemetry_stage", PipelineEngine(provider: provider, stages: [TelemetryStage()], clock: clock)),
        ("plus_generate_without_call_units", PipelineEngine(provider: provider, stages: [GenerateStage(clock: clock), TelemetryStage()], clock: clock)),
        ("plus_call_units", PipelineEngine(provider: provider, stages: [GenerateStage(calls: calls, clock: clock), TelemetryStage()], clock: clock)),
        ("default_engine", PipelineEngine(provider: provider)),
        // The default engine less its telemetry stage (the loop then folds the log itself):
        // what the telemetry stage, an ordinary stage, costs in the full engine.
        ("default_engine_without_telemetry_stage", withoutTelemetryStage(PipelineEngine(provider: provider))),
    ]
    // `PARTS_ONLY=NAME` runs that engine's row alone (for counting one row's allocations, retains
    // and frames under `perf stat`).
    let only = ProcessInfo.processInfo.environment["PARTS_ONLY"]
    if let only, !engines.contains(where: { $0.0 == only }) {
        FileHandle.standardError.write(Data("Error: PARTS_ONLY='\(only)' is not a row of the parts scenario; use one of: \(engines.map(\.0).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    var figures: [Figure] = []
    for (name, engine) in engines where only == nil || only == name {
        for command in commands { _ = await engine.executeWithFallback(command) }   // warm up
        let cost = await medianMicroseconds(per: commands.count) {
            for command in commands { _ = await engine.executeWithFallback(command) }
        }
        figures.append(Figure(scenario: "parts", metric: name, value: cost, unit: "us", goal: .none))
    }
    if only != nil { return figures }
    let requests = commands.map { GenerationRequest(model: "mock", parts: $0.plan.calls[0].parts) }
    figures.append(Figure(scenario: "parts", metric: "mock_generate_alone", value: await medianMicroseconds(per: requests.count) {
        for request in requests { _ = try? await provider.generate(request) }
    }, unit: "us", goal: .none))
    figures.append(Figure(scenario: "parts", metric: "event_log_alone", value: await medianMicroseconds(per: 1000) {
        for i in 0..<1000 { _ = EventLog(commandID: "c", index: i, provider: "mock", clock: clock).isObserved }
    }, unit: "us", goal: .none))
    figures.append(Figure(scenario: "parts", metric: "clock_reading", value: await medianMicroseconds(per: 1000) {
        var total = Duration.zero
        for _ in 0..<1000 { total += clock.now }
        _ = total
    }, unit: "us", goal: .none))
    return figures
}

/// `engine` with the same provider, clock, units and stages, less the telemetry stage.
private func withoutTelemetryStage(_ engine: PipelineEngine) -> PipelineEngine {
    PipelineEngine(provider: engine.provider, stages: engine.stages.filter { $0.name != TelemetryStage.name }, clock: engine.clock, units: engine.units)
}

/// The median over 60 runs of `body`, divided by the `count` operations each run makes.
private func medianMicroseconds(per count: Int, _ body: () async -> Void) async -> Double {
    let clock = ContinuousClock()
    var runs: [Double] = []
    for _ in 0..<60 {
        let start = clock.now
        await body()
        runs.append((clock.now - start).microseconds / Double(count))
    }
    runs.sort()
    return runs[runs.count / 2]
}
