import CommandPipeline
import Synchronization
import Testing

/// Fails the first `failures` attempts of every call with `error`, then answers; counts attempts.
final class FlakyProvider: GenerationCapability {
    let clock: ManualClock
    let failures: Int
    let error: APIError
    let hang: Duration?
    let attempts = Mutex<[String: Int]>([:])
    let times = Mutex<[Duration]>([])
    var providerName: String { "scripted" }

    init(clock: ManualClock, failures: Int, error: APIError, hang: Duration? = nil) {
        self.clock = clock
        self.failures = failures
        self.error = error
        self.hang = hang
    }

    func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        let key = request.parts.description
        let n = attempts.withLock { a -> Int in a[key, default: 0] += 1; return a[key]! }
        times.withLock { $0.append(clock.now) }
        if let hang { try await clock.sleep(for: hang) }
        if n <= failures { throw error }
        return GenerationResponse(text: "ok", model: request.model, usage: Usage(promptTokens: 1, completionTokens: 1))
    }

    var totalAttempts: Int { attempts.withLock { $0.values.reduce(0, +) } }
}

final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

final class TimeLog: Sendable {
    private let log = Mutex<[Duration]>([])
    func append(_ time: Duration) { log.withLock { $0.append(time) } }
    var all: [Duration] { log.withLock { $0 } }
}

let unavailable = APIError(.providerError, "overloaded", provider: "scripted", retryable: true, code: "unavailable")

/// Drives a manual clock: whenever `tasks` sleepers are waiting, moves time to the earliest wake-up.
/// Advances `clock` by `step` whenever something sleeps on it, until `done` — or until
/// `maxYields` yields have passed, so a regression fails the test instead of hanging it.
func drive(_ clock: ManualClock, until done: @escaping @Sendable () -> Bool, step: Duration, maxYields: Int = 5_000_000) async {
    var yields = 0
    while !done() && yields < maxYields {
        yields += 1
        await Task.yield()
        if clock.sleeperCount > 0 { clock.advance(by: step) }
    }
}

@Suite struct RetryPolicyTests {
    @Test func backoffDoublesUpToTheCapAndHonoursRetryAfter() {
        let policy = RetryPolicy(maxAttempts: 10, baseDelay: .seconds(1), maxDelay: .seconds(5), jitter: 0, maxRetryAfter: .seconds(20))
        #expect((1...5).map { policy.delay(after: $0, error: unavailable, random: 0) } == [.seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5)])
        var hinted = unavailable
        hinted.retryAfter = .seconds(7)
        #expect(policy.delay(after: 1, error: hinted, random: 0.9) == .seconds(7))
        hinted.retryAfter = .seconds(90)
        #expect(policy.delay(after: 1, error: hinted, random: 0) == .seconds(20), "Retry-After is capped")
        let jittered = RetryPolicy(baseDelay: .seconds(2), jitter: 0.5)
        #expect(jittered.delay(after: 1, error: unavailable, random: 0.999) > .seconds(1))
        #expect(jittered.delay(after: 1, error: unavailable, random: 0) == .seconds(2))
    }

    /// A policy built by hand outside its ranges (the engine refuses it; a `Retrier` or a sink may be
    /// given it directly) never traps and never waits a negative time.
    @Test func outOfRangeValuesNeverTrapNorGoNegative() {
        let wild = RetryPolicy(maxAttempts: 0, baseDelay: .seconds(-3), maxDelay: .seconds(-1), jitter: .nan, maxRetryAfter: .seconds(-5))
        #expect(wild.delay(after: 0, error: unavailable, random: 0.5) == .zero)
        #expect(wild.delay(after: -7, error: unavailable, random: .nan) == .zero)
        var hinted = unavailable
        hinted.retryAfter = .seconds(3)
        #expect(wild.delay(after: 1, error: hinted, random: 0) == .zero, "a negative cap is no cap below zero")
        let overJittered = RetryPolicy(baseDelay: .seconds(2), jitter: 1.5)
        #expect(overJittered.delay(after: 1, error: unavailable, random: 0.5) == .seconds(1), "jitter 1.5 counts as 1")
        #expect(overJittered.delay(after: 1, error: unavailable, random: 7) == .zero, "random 7 counts as 1")
    }
}

@Suite struct RetryTests {
    func engine(_ provider: FlakyProvider, _ clock: ManualClock, policy: RetryPolicy = RetryPolicy(maxAttempts: 3, baseDelay: .seconds(1), jitter: 0),
                callTimeout: Duration? = nil, commandTimeout: Duration? = nil) throws -> PipelineEngine {
        try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock, retryPolicy: policy, callTimeout: callTimeout, commandTimeout: commandTimeout))
    }

    @Test func retryableErrorsAreRetriedWithBackoffAndCounted() async throws {
        let clock = ManualClock()
        let provider = FlakyProvider(clock: clock, failures: 2, error: unavailable)
        let engine = try engine(provider, clock)
        let task = Task { await engine.executeWithFallback(command()) }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(1))
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(2))
        let finalized = try #require(await task.value.success)
        #expect(finalized.telemetry.retries == 2)
        #expect(finalized.telemetry.calls == [CallTelemetry(callIndex: 0, attempts: 3, retryWait: .seconds(3))])
        #expect(provider.times.withLock { $0 } == [.zero, .seconds(1), .seconds(3)])
    }

    @Test func nonRetryableErrorsFailAtOnce() async throws {
        let clock = ManualClock()
        let fatal = APIError(.providerError, "bad request", provider: "scripted", retryable: false)
        let provider = FlakyProvider(clock: clock, failures: 1, error: fatal)
        let outcome = try await engine(provider, clock).run(command())
        let error = try #require(outcome.error)
        #expect(error.message.contains("bad request"))
        #expect(!error.retryable)
        #expect(provider.totalAttempts == 1)
        #expect(outcome.telemetry.calls.first?.attempts == 1)
    }

    @Test func attemptsNeverExceedThePolicyAndTheFallbackComesAfter() async throws {
        let clock = ManualClock()
        let provider = FlakyProvider(clock: clock, failures: 100, error: unavailable)
        let engine = try engine(provider, clock, policy: RetryPolicy(maxAttempts: 4, baseDelay: .seconds(1), jitter: 0))
        let task = Task { await engine.run(command(prompts: ["p"], fallback: APICall(model: "f", parts: [.text("fb")]))) }
        await drive(clock, until: { provider.totalAttempts >= 8 }, step: .seconds(1))
        let outcome = await task.value
        #expect(outcome.error != nil)
        #expect(provider.attempts.withLock { $0 } == [[APIPart.text("p")].description: 4, [APIPart.text("fb")].description: 4])
        #expect(outcome.telemetry.primaryError != nil)
        #expect(outcome.telemetry.calls.map(\.attempts) == [4, 4])
        #expect(outcome.telemetry.retries == 6)
    }

    @Test func retryAfterFromTheProviderIsHonoured() async throws {
        let clock = ManualClock()
        var limited = APIError(.rateLimited, "slow down", provider: "scripted", retryable: true)
        limited.retryAfter = .seconds(7)
        let provider = FlakyProvider(clock: clock, failures: 1, error: limited)
        let engine = try engine(provider, clock)
        let task = Task { await engine.execute(command()) }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(6))
        #expect(provider.totalAttempts == 1, "not retried before Retry-After")
        clock.advance(by: .seconds(1))
        let finalized = try #require(await task.value.success)
        #expect(finalized.telemetry.retryWait == .seconds(7))
    }

    @Test func aFailedCachedCallIsRetriedOnceWithoutTheCache() async throws {
        struct StaleCacheProvider: GenerationCapability, CachingCapability {
            let base = RecordingProvider(clock: ManualClock())
            var providerName: String { "stale" }
            func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
                if request.cache != nil { throw APIError(.providerError, "cache expired on the server", provider: providerName, code: "not_found") }
                return try await base.generate(request)
            }
            func createCache(_ context: GenerationRequest, key: String, ttlSeconds: Int) async throws -> CacheReference { CacheReference(id: "c", key: key, model: context.model) }
            func cache(forKey key: String) async throws -> CacheReference? { nil }
        }
        let provider = StaleCacheProvider()
        let result = await PipelineEngine(provider: provider).execute(command(prompts: ["q"], shared: [.text("doc")], cache: CachePlan()))
        let finalized = try #require(result.success)
        #expect(finalized.telemetry.calls == [CallTelemetry(callIndex: 0, attempts: 2, cacheBypassed: true)])
        #expect(provider.base.recorder.snapshot.requests.first?.parts == [.text("doc"), .text("q")])
    }

    @Test func aHangingCallTimesOutAndIsRetried() async throws {
        let clock = ManualClock()
        let provider = FlakyProvider(clock: clock, failures: 0, error: unavailable, hang: .seconds(3600))
        let engine = try engine(provider, clock, policy: RetryPolicy(maxAttempts: 2, baseDelay: .seconds(1), jitter: 0), callTimeout: .seconds(10))
        let finished = Flag()
        let task = Task {
            let outcome = await engine.run(command())
            finished.set()
            return outcome
        }
        // Advance one second at a time while anything sleeps, until the command has finished.
        await drive(clock, until: { finished.isSet }, step: .seconds(1))
        let outcome = await task.value
        let error = try #require(outcome.error)
        #expect(error.kind == .timeout)
        #expect(error.message.contains("timed out after 10 s"))
        #expect(outcome.telemetry.calls.first?.attempts == 2)
        #expect(clock.sleeperCount == 0, "the hanging calls were cancelled")
    }

    /// A provider's final verdict that lands just after its attempt's deadline fired (the cut-off
    /// attempt answers a refusal instead of a cancellation) is reported as itself and not
    /// retried: only a cancellation, or a retryable error the cut raised, is the timeout.
    @Test func aRefusalThatLosesTheRaceWithTheCallTimeoutIsReportedAsItself() async throws {
        final class RefusesWhenCut: GenerationCapability {
            let clock: ManualClock
            let attempts = Atomic<Int>(0)
            var providerName: String { "scripted" }
            init(clock: ManualClock) { self.clock = clock }
            func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
                attempts.add(1, ordering: .relaxed)
                try? await clock.sleep(for: .seconds(3600))
                throw APIError(.providerError, "request refused", provider: "scripted", retryable: false, code: "invalid_request")
            }
        }
        let clock = ManualClock()
        let provider = RefusesWhenCut(clock: clock)
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(
            clock: clock, retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .seconds(1), jitter: 0), callTimeout: .seconds(10)))
        let finished = Flag()
        let task = Task {
            let outcome = await engine.run(command())
            finished.set()
            return outcome
        }
        await drive(clock, until: { finished.isSet }, step: .seconds(1))
        let error = try #require(await task.value.error)
        #expect(error.code == "invalid_request" && !error.retryable, "\(error)")
        #expect(provider.attempts.load(ordering: .relaxed) == 1, "a refusal is not retried")
    }

    @Test func theCommandDeadlineCoversRetriesAndCancelsWhatRuns() async throws {
        let clock = ManualClock()
        let provider = FlakyProvider(clock: clock, failures: 0, error: unavailable, hang: .seconds(3600))
        let engine = try engine(provider, clock, commandTimeout: .seconds(30))
        let task = Task { await engine.executeWithFallback(command(prompts: ["a", "b"], fallback: APICall(model: "f", parts: [.text("x")]))) }
        await clock.waitForSleepers(3)
        clock.advance(by: .seconds(30))
        let error = try #require(await task.value.failure)
        #expect(error.kind == .timeout)
        #expect(error.message.contains("deadline of 30 s"))
        #expect(clock.sleeperCount == 0)
        #expect(provider.totalAttempts == 2, "the fallback did not start after the deadline")
    }
}

@Suite struct RateLimiterTests {
    /// Calls `k` (in time order) that no limit of `perMinute` requests could have let start
    /// before minute ⌊k / perMinute⌋. Times taken after a grant can only be later than the
    /// grant (a loaded machine runs the granted task after the test clock moved on), so this
    /// is what a test can check without assuming the machine's speed; a limiter that let too
    /// many through in a window breaks it.
    func startedTooEarly(_ times: [Duration], perMinute: Int) -> [Int] {
        times.sorted().enumerated().filter { k, time in time < .seconds(60 * (k / perMinute)) }.map(\.offset)
    }

    @Test func requestsPerMinuteHoldInEverySlidingWindow() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(requestsPerMinute: 10, clock: clock)
        let times = TimeLog()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<25 {
                group.addTask {
                    _ = try? await limiter.acquire(tokens: 0)
                    times.append(clock.now)
                }
            }
            await drive(clock, until: { times.all.count == 25 }, step: .seconds(1))
        }
        let granted = times.all
        #expect(granted.count == 25)
        #expect(startedTooEarly(granted, perMinute: 10).isEmpty, "\(granted.sorted())")
        #expect(try #require(granted.max()) >= .seconds(120), "the last five wait for the third minute")
        // The clock only moves while someone sleeps on it: it stops at the last grant.
        #expect(clock.now == .seconds(120), "no later: the limiter lets ten through each minute")
    }

    @Test func tokensPerMinuteAreChargedAndCorrectedWithActualUsage() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(tokensPerMinute: 1000, clock: clock)
        let first = try await limiter.acquire(tokens: 900)
        limiter.settle(first, actualTokens: 100)
        _ = try await limiter.acquire(tokens: 800)  // fits only because the first was corrected to 100
        let third = Task { _ = try await limiter.acquire(tokens: 500) }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(60))
        try await third.value
        #expect(clock.now == .seconds(60))
    }

    @Test func a429PausesEveryoneAndShrinksTheBudget() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(requestsPerMinute: 100, probeSpacing: .zero, clock: clock)
        var limited = APIError(.rateLimited, "429", retryable: true)
        limited.retryAfter = .seconds(5)
        limiter.throttle(after: limited)
        let waiting = Task { _ = try await limiter.acquire(tokens: 0); return clock.now }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(5))
        #expect(try await waiting.value == .seconds(5))
        // The budget is halved: 50 grants fit in the window now (one is taken already).
        var granted = 1
        while limiter.tryAcquire(tokens: 0) != nil { granted += 1 }
        #expect(granted == 50)
    }

    @Test func aPlansRateConstraintPacesItsOwnCalls() async throws {
        let clock = ManualClock()
        let provider = FlakyProvider(clock: clock, failures: 0, error: unavailable)
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock))
        var cmd = command(prompts: (0..<5).map { "p\($0)" })
        cmd.plan.rateConstraint = RateConstraint(requestsPerMinute: 2)
        let task = Task { await engine.execute(cmd) }
        await drive(clock, until: { provider.totalAttempts == 5 }, step: .seconds(1))
        #expect(try #require(await task.value.success).responses.count == 5)
        let times = provider.times.withLock { $0 }
        #expect(times.count == 5)
        #expect(startedTooEarly(times, perMinute: 2).isEmpty, "\(times.sorted())")
        #expect(try #require(times.max()) >= .seconds(120), "the fifth call waits for the third minute")
        #expect(clock.now == .seconds(120), "and no later: the clock stops at the last grant")
    }
}

/// Issue 26 / 22: a rate-limit wait is recorded before the attempt it delays (a `waiting`
/// event with the wait's length, while the command is held), and the command's lender hears it
/// start and end (the CLI's progress line counts "waiting on rate limit" from that).
@Suite struct RateLimitWaitIsSeenWhileItLastsTests {
    final class Seen: BackoffLender {
        let state = Mutex<(events: [PipelineEvent], started: Int, ended: Int)>(([], 0, 0))
        func backoffStarted() {}
        func backoffEnded() async {}
        func rateLimitWaitStarted() { state.withLock { $0.started += 1 } }
        func rateLimitWaitEnded() { state.withLock { $0.ended += 1 } }
        var waits: [Duration] {
            state.withLock { s in
                s.events.compactMap { event -> Duration? in
                    if case .waiting(_, "rate_limit", let duration) = event.kind { return duration }
                    return nil
                }
            }
        }
    }

    @Test func theWaitIsRecordedBeforeTheAttemptItDelays() async throws {
        let clock = ManualClock()
        let provider = FlakyProvider(clock: clock, failures: 0, error: unavailable)
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock, rateLimit: RateConstraint(requestsPerMinute: 1)))
        #expect(await engine.run(command("first"), index: 0).succeeded, "the minute's one request")
        let seen = Seen()
        let task = Task {
            await BackoffScope.$lender.withValue(seen) {
                await engine.run(command("second"), index: 1, observer: { event in seen.state.withLock { $0.events.append(event) } })
            }
        }
        // The clock does not move: the wait must be known while it lasts (bounded by a count of yields).
        var yields = 0
        while seen.waits.isEmpty && yields < 1_000_000 {
            await Task.yield()
            yields += 1
        }
        #expect(seen.waits == [.seconds(60)], "recorded with its length, before it is over")
        #expect(provider.totalAttempts == 1, "the second attempt is still held")
        #expect(seen.state.withLock { ($0.started, $0.ended) } == (1, 0), "the lender knows it waits")
        #expect(clock.now == .zero)
        await drive(clock, until: { provider.totalAttempts == 2 }, step: .seconds(1))
        let outcome = await task.value
        #expect(outcome.succeeded)
        #expect(seen.state.withLock { ($0.started, $0.ended) } == (1, 1))
        #expect(outcome.telemetry.retryWait == .seconds(60), "retry_wait_ms still counts the wait")
    }
}

@Suite struct AdaptiveWithoutLimitsTests {
    /// The retry layer pauses the limiter it is given on a 429 from any request (a call, an
    /// upload, a cache creation), and only on a 429; until then the limiter is idle and the
    /// rate-limit unit does not apply.
    @Test func theRetryLayerPausesItsLimiterOnA429() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(clock: clock)
        let retrier = Retrier(policy: RetryPolicy(maxAttempts: 1), clock: clock, pausing: limiter)
        let other = APIError(.providerError, "overloaded", retryable: true)
        _ = await retrier.run(cancelled: APIError(.cancelled, "c")) { _ -> Result<Int, APIError> in .failure(other) }
        #expect(limiter.isIdle, "another failure does not pause it")
        var limited = APIError(.rateLimited, "429", retryable: true)
        limited.retryAfter = .seconds(10)
        _ = await retrier.run(cancelled: APIError(.cancelled, "c")) { _ -> Result<Int, APIError> in .failure(limited) }
        #expect(!limiter.isIdle)
        #expect(limiter.tryAcquire(tokens: 0) == nil, "calls wait out the pause")
        let unit = RateLimitUnit(limiter: limiter, clock: clock)
        let idleUnit = RateLimitUnit(limiter: RateLimiter(clock: clock), clock: clock)
        let input = CallInput(
            request: GenerationRequest(model: "m", parts: [.text("a")]), callIndex: 0, path: "plan.calls[0]",
            state: ExecutionState(command: command()), provider: MockProvider.make(), log: EventLog(commandID: "c", provider: "mock", clock: clock))
        #expect(unit.applies(to: input) && !idleUnit.applies(to: input))
    }

    @Test func a429PausesOtherCallsEvenWithoutAConfiguredLimit() async throws {
        let clock = ManualClock()
        var limited = APIError(.rateLimited, "429", provider: "scripted", retryable: true)
        limited.retryAfter = .seconds(10)
        let provider = FlakyProvider(clock: clock, failures: 1, error: limited)
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock, retryPolicy: RetryPolicy(maxAttempts: 2, jitter: 0)))
        final class Finished: Sendable { let count = Atomic<Int>(0) }
        let finished = Finished()
        let first = Task {
            let result = await engine.execute(command("first", prompts: ["a"]))
            finished.count.add(1, ordering: .releasing)
            return result
        }
        #expect(await clock.waitForSleepers(1))  // "a" got its 429 and waits for Retry-After
        let second = Task {
            let result = await engine.execute(command("second", prompts: ["b"]))
            finished.count.add(1, ordering: .releasing)
            return result
        }
        #expect(await clock.waitForSleepers(2))
        #expect(provider.totalAttempts == 1, "the second command's call waits for the pause instead of hitting the server")
        // From here the order depends on which task resumes first after each pause ("b" meets
        // its own scripted 429 at 10 s, before or after "a" succeeds): drive the clock pause by
        // pause until both are done (bounded), then check what holds either way.
        await drive(clock, until: { finished.count.load(ordering: .acquiring) == 2 }, step: .seconds(10))
        #expect(finished.count.load(ordering: .acquiring) == 2, "both commands end")
        #expect(await first.value.success != nil)
        let secondResult = try #require(await second.value.success)
        #expect(secondResult.telemetry.calls.first?.attempts == 2)
        let times = provider.times.withLock { $0 }.sorted()
        #expect(times.count == 4)
        #expect(times.first == .zero && times.dropFirst().allSatisfy { $0 >= .seconds(10) }, "no call was sent during the first pause: \(times)")
        #expect(times.last.map { $0 >= .seconds(20) } == true, "the second 429 (at 10 s or later) paused the retry for 10 s more: \(times)")
    }
}

/// The pause after a 429 is capped by the engine's `RetryPolicy.maxRetryAfter` — the engine's
/// limiter's and a plan's own `rate_constraint` limiter's alike — not by the server's
/// `Retry-After` nor a limiter's default: a server that says "come back in ten minutes" holds
/// the run no longer than the user allowed.
@Suite struct PauseCapTests {
    static let cap = Duration.seconds(5)

    static func limited() -> APIError {
        var error = APIError(.rateLimited, "429", provider: "scripted", retryable: true)
        error.retryAfter = .seconds(600)
        return error
    }

    static func configuration(_ clock: ManualClock) -> EngineConfiguration {
        // One attempt: the 429 is not retried, so only the limiters' pause holds the next call back.
        EngineConfiguration(clock: clock, retryPolicy: RetryPolicy(maxAttempts: 1, jitter: 0, maxRetryAfter: cap))
    }

    @Test func theEngineLimitersPauseEndsAtMaxRetryAfter() async throws {
        let clock = ManualClock()
        let provider = FlakyProvider(clock: clock, failures: 1, error: Self.limited())
        let engine = try PipelineEngine(provider: provider, configuration: Self.configuration(clock))
        let first = await engine.run(command("first", prompts: ["a"]))
        #expect(first.error?.kind == .rateLimited)
        let second = Task { await engine.run(command("second", prompts: ["b"])) }
        #expect(await clock.waitForSleepers(1), "the second command waits out the pause")
        #expect(provider.totalAttempts == 1)
        clock.advance(by: Self.cap)
        let sent = await eventually { provider.totalAttempts == 2 }
        second.cancel()   // ends a regression's wait (600 s or a default cap) instead of hanging
        _ = await second.value
        #expect(sent, "the pause ended at maxRetryAfter (5 s), not at the server's 600 s")
        #expect(provider.times.withLock { $0 } == [.zero, Self.cap])
    }

    @Test func aPlansOwnLimitersPauseEndsAtMaxRetryAfter() async throws {
        let clock = ManualClock()
        let provider = FlakyProvider(clock: clock, failures: 1, error: Self.limited())
        var configuration = Self.configuration(clock)
        configuration.maxConcurrentCalls = 1
        let engine = try PipelineEngine(provider: provider, configuration: configuration)
        let plan = ExecutionPlan(
            calls: [APICall(model: "m", parts: [.text("a")]), APICall(model: "m", parts: [.text("b")])],
            rateConstraint: RateConstraint(requestsPerMinute: 1_000))
        let run = Task { await engine.run(PlannedCommand(id: "paced", plan: plan)) }
        #expect(await clock.waitForSleepers(1), "call 1 waits out the pause call 0's 429 began")
        #expect(provider.totalAttempts == 1)
        clock.advance(by: Self.cap)
        let sent = await eventually { provider.totalAttempts == 2 }
        run.cancel()
        _ = await run.value
        #expect(sent, "both limiters (the engine's and the plan's) paused for maxRetryAfter, not 600 s nor 60 s")
    }
}
