import CommandPipeline
import Synchronization
import Testing

/// Counts what reaches the mock: every attempt, and every non-retryable fault it raised.
final class CountingProvider: GenerationCapability {
    let base: any GenerationCapability
    let attempts = Atomic<Int>(0)
    let fatalRaised = Atomic<Int>(0)
    var providerName: String { base.providerName }

    init(_ base: any GenerationCapability) { self.base = base }

    func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        attempts.add(1, ordering: .relaxed)
        do {
            return try await base.generate(request)
        } catch let error as APIError where error.code == "invalid_request" {
            fatalRaised.add(1, ordering: .relaxed)
            throw error
        }
    }
}

/// Runs `count` single-call commands through `engine`, at most `concurrency` at once.
func runMany(_ engine: PipelineEngine, count: Int, concurrency: Int) async -> [CommandOutcome] {
    await withTaskGroup(of: CommandOutcome.self) { group in
        var results: [CommandOutcome] = []
        results.reserveCapacity(count)
        var next = 0
        func launch() {
            let command = PlannedCommand(id: "c\(next)", plan: ExecutionPlan(call: APICall(model: "mock", parts: [.text("prompt \(next)")])))
            group.addTask { await engine.run(command) }
            next += 1
        }
        while next < min(concurrency, count) { launch() }
        for await result in group {
            results.append(result)
            if next < count { launch() }
        }
        return results
    }
}

@Suite struct FaultScenarioTests {
    /// Issue 5's proof: 100,000 commands, 20% retryable faults, 2% fatal, 1% hangs, concurrency 256.
    @Test func everyCommandIsAccountedForUnderFaults() async throws {
        let faults = MockFaultPlan(retryable: 0.2, fatal: 0.02, hang: 0.01, seed: 7)
        let provider = CountingProvider(MockProvider.make(MockConfiguration(faults: faults)))
        let policy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(4), jitter: 0.5)
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(retryPolicy: policy, callTimeout: .milliseconds(20)))
        let submitted = 100_000
        let outcomes = await runMany(engine, count: submitted, concurrency: 256)
        let results = outcomes.map(\.result)

        #expect(results.count == submitted, "exactly one result per command")
        #expect(Set(outcomes.map(\.command.id)).count == submitted, "no command answered twice or lost")
        #expect(results.compactMap(\.success).allSatisfy { $0.id.hasPrefix("c") })
        let succeeded = results.compactMap(\.success)
        let failed = results.compactMap(\.failure)
        #expect(succeeded.count + failed.count == submitted)

        let calls = outcomes.flatMap(\.telemetry.calls)
        #expect(calls.count == submitted)
        #expect(calls.allSatisfy { (1...3).contains($0.attempts) }, "no call is attempted more than the policy allows")
        #expect(calls.reduce(0) { $0 + $1.attempts } == provider.attempts.load(ordering: .relaxed), "telemetry counts every attempt")

        let fatal = failed.filter { $0.code == "invalid_request" }
        // Even one raised by an attempt its 20 ms had already cut off (a starved machine starts
        // attempts late): a provider's final verdict is reported as itself, never as a timeout.
        #expect(fatal.count == provider.fatalRaised.load(ordering: .relaxed), "every non-retryable fault is reported as such")
        #expect(fatal.allSatisfy { !$0.retryable && $0.kind == .providerError })
        let exhausted = outcomes.filter { $0.error.map { $0.code != "invalid_request" } ?? false }
        #expect(exhausted.allSatisfy { outcome in
            let error = outcome.error!
            return error.retryable && (error.kind == .timeout || error.code == "unavailable") && outcome.telemetry.calls.first?.attempts == 3
        })

        // The fractions are what the plan asked for (2% fatal per attempt, ~20% retryable per attempt).
        #expect((1_500...2_600).contains(fatal.count))
        #expect(succeeded.count > 95_000)
    }

    @Test func retryAfterFaultsAreHonoured() async throws {
        let faults = MockFaultPlan(retryable: 0.3, retryAfter: .milliseconds(3), seed: 11)
        let policy = RetryPolicy(maxAttempts: 5, baseDelay: .seconds(10), jitter: 0)
        let engine = try PipelineEngine(provider: MockProvider.make(MockConfiguration(faults: faults)), configuration: EngineConfiguration(retryPolicy: policy))
        let results = await runMany(engine, count: 2_000, concurrency: 128).map(\.result)
        let retried = results.compactMap(\.success).flatMap(\.telemetry.calls).filter { $0.attempts > 1 }
        #expect(!retried.isEmpty)
        // Each wait is the provider's 3 ms, not the policy's 10 s backoff.
        #expect(retried.allSatisfy { $0.retryWait == .milliseconds(3) * $0.retries })
    }

    @Test func theRequestRateNeverExceedsTheLimit() async throws {
        // 50× real time: a limit of 600 requests per (clock) minute is 500 per real second. The
        // assertions hold on a machine of any speed (a starved run once reached only 520–587 of the
        // 600 in a minute, so "exactly 600" was a claim about the machine, not the limiter).
        let clock = ScaledClock(speedup: 50)
        let faults = MockFaultPlan(retryable: 0.2, fatal: 0.02, seed: 3)
        let limiter = RateLimiter(requestsPerMinute: 600, clock: clock)
        let policy = RetryPolicy(maxAttempts: 3, baseDelay: .seconds(1), jitter: 0.5)
        let calls = CallChain(
            [CacheBypassUnit(policy: policy), RetryUnit(retrier: Retrier(policy: policy, clock: clock)), RateLimitUnit(limiter: limiter, clock: clock)],
            terminal: ProviderCall.run)
        let engine = PipelineEngine(
            provider: MockProvider.make(MockConfiguration(faults: faults, clock: clock)),
            stages: [GenerateStage(calls: calls, clock: clock), TelemetryStage()], clock: clock)
        let start = clock.now
        let results = await runMany(engine, count: 1_500, concurrency: 256)
        #expect(results.count == 1_500)
        // Never exceeded, whatever the machine's speed; and it bound: 1,500 first attempts at 600
        // a minute cannot all start within two clock minutes (a slow machine only takes longer).
        #expect(limiter.peakRequestsPerMinute <= 600 && limiter.peakRequestsPerMinute > 0, "\(limiter.peakRequestsPerMinute)")
        #expect(clock.now - start >= .seconds(120), "the limit made the run wait: \(clock.now - start)")
    }
}
