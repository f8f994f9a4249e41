import CommandPipeline
import Foundation

/// 100,000 commands through the engine with 20% retryable faults, 2% fatal, 1% hangs,
/// concurrency 256: wall time, attempts per call, peak memory, and exact accounting.
func faultsScenario(commands: Int) async -> [Figure] {
    let faults = MockFaultPlan(retryable: 0.2, fatal: 0.02, hang: 0.01, seed: 7)
    let policy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(4), jitter: 0.5)
    let engine = configuredEngine(
        provider: MockProvider.make(MockConfiguration(faults: faults)),
        configuration: EngineConfiguration(maxConcurrentCalls: 1, retryPolicy: policy, callTimeout: .milliseconds(20)))
    let clock = ContinuousClock()
    let start = clock.now
    var rssSamples: [Int] = []  // resident set (KiB) after each further 10% of the commands
    var succeeded = 0, failed = 0, fatal = 0, fatalReportedRetryable = 0, attempts = 0, maxAttempts = 0
    await withTaskGroup(of: CommandOutcome.self) { group in
        var next = 0
        func launch() {
            let command = PlannedCommand(id: "c\(next)", plan: ExecutionPlan(call: APICall(model: "mock", parts: [.text("prompt \(next)")])))
            group.addTask { await engine.run(command) }
            next += 1
        }
        while next < min(256, commands) { launch() }
        for await outcome in group {
            let calls = outcome.telemetry.calls
            switch outcome.result {
            case .success:
                succeeded += 1
            case .failure(let error):
                failed += 1
                if error.code == "invalid_request" {
                    fatal += 1
                    if error.retryable { fatalReportedRetryable += 1 }
                }
            }
            for call in calls {
                attempts += call.attempts
                maxAttempts = max(maxAttempts, call.attempts)
            }
            if (succeeded + failed) % (commands / 10) == 0 { rssSamples.append(residentKiB(pid: getpid()) ?? 0) }
            if next < commands { launch() }
        }
    }
    let seconds = (clock.now - start).seconds
    let peakKiB = highWaterMarkKiB(pid: getpid()) ?? 0
    let peakMB = Double(peakKiB) / 1024
    return [
        Figure(scenario: "faults", metric: "results", value: Double(succeeded + failed), unit: "count", goal: .exactly(Double(commands))),
        Figure(scenario: "faults", metric: "succeeded", value: Double(succeeded), unit: "count", goal: .none),
        Figure(scenario: "faults", metric: "failed", value: Double(failed), unit: "count", goal: .none),
        Figure(scenario: "faults", metric: "failed_non_retryable", value: Double(fatal), unit: "count", goal: .none),
        Figure(scenario: "faults", metric: "non_retryable_reported_retryable", value: Double(fatalReportedRetryable), unit: "count", goal: .exactly(0)),
        Figure(scenario: "faults", metric: "attempts_per_call", value: Double(attempts) / Double(commands), unit: "ratio", goal: .none),
        Figure(scenario: "faults", metric: "max_attempts_per_call", value: Double(maxAttempts), unit: "count", goal: .atMost(3)),
        Figure(scenario: "faults", metric: "wall_time", value: seconds, unit: "s", goal: .none),
        Figure(scenario: "faults", metric: "peak_memory_process", value: peakMB, unit: "MB", goal: .none),
        Figure(scenario: "faults", metric: "rss_at_20pct", value: Double(rssSamples.count > 1 ? rssSamples[1] : 0) / 1024, unit: "MB", goal: .none),
        Figure(scenario: "faults", metric: "rss_at_100pct", value: Double(rssSamples.last ?? 0) / 1024, unit: "MB", goal: .none),
        Figure(scenario: "faults", metric: "rss_max_of_samples", value: Double(rssSamples.max() ?? 0) / 1024, unit: "MB", goal: .none),
    ]
}
