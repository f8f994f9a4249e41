import CommandPipeline
import Foundation
import Synchronization
import Testing

/// Absurd integers from input and servers: range-checked where they enter, saturated in sums.
@Suite struct IntegerRangeTests {
    @Test func saturatingArithmeticPinsAtTheBounds() {
        #expect(Int.max.addingSaturating(1) == .max)
        #expect(Int.min.addingSaturating(-1) == .min)
        #expect(40.addingSaturating(2) == 42)
        #expect(Int.max.multipliedSaturating(by: 2) == .max)
        #expect(Int.max.multipliedSaturating(by: -2) == .min)
        #expect(6.multipliedSaturating(by: 7) == 42)
        #expect([Int.max, 1, 1].saturatingSum { $0 } == .max)
    }

    static let outOfRange: [(String, String, String)] = [
        (#""calls":[{"model":"m","parts":[{"type":"text","text":"x"}],"config":{"max_tokens":9223372036854775807}}]"#, "plan.calls[0].config.max_tokens", "between 1 and 100,000,000"),
        (#""calls":[{"model":"m","parts":[{"type":"text","text":"x"}],"config":{"max_tokens":1e30}}]"#, "plan.calls[0].config.max_tokens", "too large"),
        (#""calls":[{"model":"m","parts":[{"type":"text","text":"x"}]}],"rate_constraint":{"requests_per_minute":9223372036854775807}"#, "plan.rate_constraint.requests_per_minute", "between 1 and"),
        (#""calls":[{"model":"m","parts":[{"type":"text","text":"x"}]}],"rate_constraint":{"tokens_per_minute":-1}"#, "plan.rate_constraint.tokens_per_minute", "between 1 and"),
        (#""calls":[{"model":"m","parts":[{"type":"text","text":"x"}]}],"cache":{"ttl_seconds":9223372036854775807}"#, "plan.cache.ttl_seconds", "between 1 and 31,536,000"),
    ]

    @Test(arguments: outOfRange)
    func anIntegerOutOfRangeIsAnInvalidCommandNamingTheField(plan: String, path: String, message: String) throws {
        let value = try JSONParser.parse("{\"plan\":{\(plan)}}")
        let rejection = try #require(WireFormat.command(from: value, position: 1).failure)
        #expect(rejection.error.kind == .invalidCommand)
        #expect(rejection.error.path == path)
        #expect(rejection.error.message.contains(message), "\(rejection.error.message)")
    }

    @Test func tokenEstimatesNearIntMaxAreRejectedNotSummed() throws {
        let value = try JSONParser.parse(#"{"model":"m","prompt":"x","token_estimate":{"min_tokens":0,"expected_tokens":9223372036854775806,"max_tokens":9223372036854775807}}"#)
        let rejection = try #require(WireFormat.command(from: value, position: 1).failure)
        #expect(rejection.error.path == "token_estimate.expected_tokens")
        #expect(rejection.issues.map(\.path) == ["token_estimate.expected_tokens", "token_estimate.max_tokens"])
    }

    @Test func aCommandBuiltInSwiftMeetsTheSameRanges() async {
        var cmd = command(prompts: ["a"])
        cmd.plan.calls[0].config.maxTokens = .max
        let result = await PipelineEngine(provider: MockProvider.make()).execute(cmd)
        #expect(result.failure?.kind == .invalidCommand)
        #expect(result.failure?.path == "plan.calls[0].config.max_tokens")
    }

    @Test func usageFromAServerIsPinnedAndSumsSaturate() async throws {
        let huge = Usage(promptTokens: .max, completionTokens: .max, cachedTokens: -5)
        #expect(huge.promptTokens == Limits.reportedTokens.upperBound)
        #expect(huge.totalTokens == Limits.reportedTokens.upperBound)
        #expect(huge.cachedTokens == 0)
        // A fan-out of 64 calls that each report absurd usage: no trap, the total is pinned.
        let engine = PipelineEngine(provider: AbsurdUsageProvider())
        let result = try #require(await engine.execute(command(prompts: (0..<64).map { "p\($0)" })).success)
        #expect(result.usage.totalTokens == Limits.reportedTokens.upperBound)
        #expect(result.usage.promptTokens == Limits.reportedTokens.upperBound)
    }
}

/// Reports usage of `Int.max` for every call.
struct AbsurdUsageProvider: GenerationCapability {
    var providerName: String { "absurd" }
    func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        GenerationResponse(text: "ok", model: request.model, usage: Usage(promptTokens: .max, completionTokens: .max, totalTokens: .max, cachedTokens: .max))
    }
}

@Suite struct LimiterHardeningTests {
    func limited(retryAfter: Duration?) -> APIError {
        var error = APIError(.rateLimited, "429", retryable: true)
        error.retryAfter = retryAfter
        return error
    }

    @Test func simultaneous429sAreOneEpisodeAndHalveTheBudgetOnce() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(requestsPerMinute: 100, probeSpacing: .zero, clock: clock)
        for _ in 0..<10 { limiter.throttle(after: limited(retryAfter: .seconds(5))) }
        let waiting = Task { _ = try await limiter.acquire(tokens: 0); return clock.now }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(5))
        #expect(try await waiting.value == .seconds(5), "ten 429s of one moment pause once, not ten times")
        var granted = 1
        while limiter.tryAcquire(tokens: 0) != nil { granted += 1 }
        #expect(granted == 50, "the budget is halved once (100 → 50), not ten times")
    }

    @Test func aHugeRetryAfterPausesNoLongerThanTheCap() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(maxPause: .seconds(60), clock: clock)
        limiter.throttle(after: limited(retryAfter: .seconds(86_400)))
        let waiting = Task { _ = try await limiter.acquire(tokens: 0); return clock.now }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(60))
        #expect(try await waiting.value == .seconds(60))
    }

    @Test func afterAPauseCallsGoOneBySpacingUntilOneSucceeds() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(probeSpacing: .seconds(1), clock: clock)
        limiter.throttle(after: limited(retryAfter: .seconds(10)))
        let times = TimeLog()
        let tasks = (0..<3).map { _ in Task { _ = try await limiter.acquire(tokens: 0); times.append(clock.now) } }
        await clock.waitForSleepers(3)
        clock.advance(by: .seconds(10))
        // One goes at the end of the pause; the others wait for the next probe slot.
        await clock.waitForSleepers(2)
        #expect(times.all == [.seconds(10)])
        clock.advance(by: .seconds(1))
        await clock.waitForSleepers(1)
        #expect(times.all == [.seconds(10), .seconds(11)])
        limiter.recordSuccess()
        #expect(limiter.tryAcquire(tokens: 0) != nil, "after a success, grants are immediate again")
        clock.advance(by: .seconds(1))
        for task in tasks { try await task.value }
        #expect(times.all == [.seconds(10), .seconds(11), .seconds(12)])
    }

    @Test func timeWaitingOnTheLimiterCountsAsRetryWait() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(clock: clock)
        limiter.throttle(after: limited(retryAfter: .seconds(10)))  // another call's 429
        let provider = FlakyProvider(clock: clock, failures: 0, error: unavailable)
        let policy = RetryPolicy(jitter: 0)
        let calls = CallChain(
            [RetryUnit(retrier: Retrier(policy: policy, clock: clock)), RateLimitUnit(limiter: limiter, clock: clock)], terminal: ProviderCall.run)
        let engine = PipelineEngine(provider: provider, stages: [GenerateStage(calls: calls, clock: clock), TelemetryStage()], clock: clock)
        let outcome = Task { await engine.run(command(prompts: ["a"])) }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(10))
        let telemetry = try #require(await outcome.value.telemetry.calls.first)
        #expect(telemetry.attempts == 1)
        #expect(telemetry.retryWait == .seconds(10), "the pause this call sat out is part of its waiting")
    }
}

/// Uploads and cache creation go through the same retry layer as generate calls.
@Suite struct RetryLayerTests {
    /// Fails the first `failures` uploads and cache creations with `error`.
    final class FlakyProvider: GenerationCapability, UploadsCapability, CachingCapability {
        let failures: Int
        let error: APIError
        let uploads = Atomic<Int>(0)
        let creations = Atomic<Int>(0)
        var providerName: String { "flaky" }
        init(failures: Int, error: APIError) {
            self.failures = failures
            self.error = error
        }
        func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
            GenerationResponse(text: "ok", model: request.model, usage: Usage(promptTokens: 1, completionTokens: 1))
        }
        func upload(_ file: FileUpload) async throws -> FileReference {
            if uploads.add(1, ordering: .relaxed).newValue <= failures { throw error }
            return FileReference(uri: "flaky://\(file.path)", mimeType: file.mimeType)
        }
        func createCache(_ context: GenerationRequest, key: String, ttlSeconds: Int) async throws -> CacheReference {
            if creations.add(1, ordering: .relaxed).newValue <= failures { throw error }
            return CacheReference(id: "cache", key: key, model: context.model)
        }
        func cache(forKey key: String) async throws -> CacheReference? { nil }
    }

    func engine(_ provider: FlakyProvider, attempts: Int) throws -> PipelineEngine {
        try PipelineEngine(provider: provider, configuration: EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: attempts, baseDelay: .zero, jitter: 0)))
    }

    @Test func aTransientUploadFailureIsRetried() async throws {
        let file = try temporaryDirectory(files: ["a.txt": "hello"]).appendingPathComponent("a.txt").path
        let provider = FlakyProvider(failures: 2, error: unavailable)
        let result = try #require(await engine(provider, attempts: 3).execute(command(shared: [.filePlaceholder(FilePlaceholder(path: file))])).success)
        #expect(result.telemetry.uploads.performed == 1)
        #expect(provider.uploads.load(ordering: .relaxed) == 3)
    }

    @Test func aNonRetryableUploadFailureIsNotRetried() async throws {
        let file = try temporaryDirectory(files: ["a.txt": "hello"]).appendingPathComponent("a.txt").path
        let provider = FlakyProvider(failures: 1, error: APIError(.providerError, "bad file", retryable: false))
        let result = try await engine(provider, attempts: 3).execute(command(shared: [.filePlaceholder(FilePlaceholder(path: file))]))
        #expect(result.failure?.kind == .uploadFailed)
        #expect(provider.uploads.load(ordering: .relaxed) == 1)
    }

    @Test func aTransientCacheCreationFailureIsRetried() async throws {
        let provider = FlakyProvider(failures: 2, error: unavailable)
        let result = try #require(await engine(provider, attempts: 3).execute(command(shared: [.text("context")], cache: CachePlan())).success)
        #expect(result.telemetry.cache?.created == true)
        #expect(provider.creations.load(ordering: .relaxed) == 3)
        let exhausted = FlakyProvider(failures: 5, error: unavailable)
        let failed = try await engine(exhausted, attempts: 2).execute(command(shared: [.text("context")], cache: CachePlan()))
        #expect(failed.failure?.kind == .cacheFailed)
        #expect(exhausted.creations.load(ordering: .relaxed) == 2, "the policy's attempts bound cache creation too")
    }
}

@Suite struct MockFaultPlanRangeTests {
    @Test(arguments: ["retry_after_ms=9223372036854775807", "jitter_ms=86400001", "jitter_ms=-1", "retry_after_ms=1e20"])
    func durationsBeyondADayAreRefused(spec: String) throws {
        guard case .failure(let error) = MockFaultPlan.parse(spec) else {
            Issue.record("'\(spec)' was accepted")
            return
        }
        #expect(error.message.contains("one day"))
    }

    @Test func aDayIsAccepted() throws {
        let plan = try MockFaultPlan.parse("retry_after_ms=86400000").get()
        #expect(plan.retryAfter == .seconds(86_400))
    }
}

@Suite struct ErrorPathTests {
    /// Refuses a reserved provider option, naming it relative to the call as adapters do.
    struct RefusingProvider: GenerationCapability {
        var providerName: String { "refusing" }
        func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
            if request.parts == [.text("down")] { throw APIError(.providerError, "down", retryable: false) }
            if request.parts == [.text("bad")] {
                throw APIError(.invalidCommand, "config.provider_options.stream cannot be set", path: "config.provider_options.stream")
            }
            return GenerationResponse(text: "ok", model: request.model, usage: .zero)
        }
    }

    @Test func anAdaptersRelativePathGetsTheCallsPath() async throws {
        let engine = PipelineEngine(provider: RefusingProvider())
        let error = try #require(await engine.execute(command(prompts: ["fine", "bad"])).failure)
        #expect(error.path == "plan.calls[1].config.provider_options.stream")
        let viaFallback = try #require(await engine.executeWithFallback(command(prompts: ["down"], fallback: APICall(model: "m", parts: [.text("bad")]))).failure)
        #expect(viaFallback.path == "plan.fallback_call.config.provider_options.stream")
    }
}
