import CommandPipeline
import CommandPipelineTesting
import Testing

@Suite struct LatencyHistogramTests {
    @Test func percentilesOfAKnownDistributionWithinTheBucketPrecision() {
        var histogram = LatencyHistogram()
        // 1 ms … 1000 ms, one each: p50 = 500 ms, p95 = 950 ms, p99 = 990 ms.
        for ms in 1...1000 { histogram.record(.milliseconds(ms)) }
        #expect(histogram.count == 1000)
        for (p, expected) in [(0.50, 500.0), (0.95, 950.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = Double(histogram.percentile(p).components.attoseconds) / 1e15 + Double(histogram.percentile(p).components.seconds) * 1000
            #expect(abs(got - expected) / expected <= 1.0 / 32, "p\(p): \(got) ms, expected \(expected) ms within 1/32")
        }
        // A skewed one: 90 fast calls and 10 slow ones.
        var skewed = LatencyHistogram()
        for _ in 0..<90 { skewed.record(.microseconds(20)) }
        for _ in 0..<10 { skewed.record(.seconds(2)) }
        #expect(skewed.percentile(0.5) == .microseconds(20), "exact below 32 µs")
        #expect(skewed.percentile(0.90) == .microseconds(20))
        let p95 = skewed.percentile(0.95)
        #expect(p95 > .milliseconds(1900) && p95 < .milliseconds(2100))
    }

    @Test func bucketsAreContiguousAndEveryValueFallsInItsOwn() {
        var previousHigh = 0
        for index in 0..<600 {
            let (low, high) = LatencyHistogram.bounds(of: index)
            #expect(low == previousHigh, "bucket \(index) starts where \(index - 1) ended")
            #expect(LatencyHistogram.index(of: low) == index && LatencyHistogram.index(of: high - 1) == index)
            previousHigh = high
        }
    }

    @Test func absurdAndEmptyValuesNeverTrap() {
        var histogram = LatencyHistogram()
        #expect(histogram.percentile(0.99) == .zero)
        histogram.record(.seconds(Int64.max))
        histogram.record(.seconds(-5))
        histogram.record(.zero)
        #expect(histogram.count == 3)
        #expect(histogram.percentile(0.01) == .zero)
        #expect(histogram.percentile(1) > .seconds(1_000_000))
        // Percentiles out of range or NaN clamp instead of trapping on the Int conversion.
        #expect(histogram.percentile(.nan) == .zero)
        #expect(histogram.percentile(-3) == .zero)
        #expect(histogram.percentile(.infinity) == histogram.percentile(1))
        #expect(histogram.percentile(7) == histogram.percentile(1))
    }

    @Test func theRankOfAPercentileStaysWithinTheCount() {
        #expect(LatencyHistogram.rank(0.5, of: 10) == 5)
        #expect(LatencyHistogram.rank(0.51, of: 10) == 6, "rounded up")
        #expect(LatencyHistogram.rank(0.001, of: 10) == 1)
        #expect(LatencyHistogram.rank(1, of: 10) == 10)
        #expect(LatencyHistogram.rank(.nan, of: 10) == 1)
        #expect(LatencyHistogram.rank(-.infinity, of: 10) == 1)
        #expect(LatencyHistogram.rank(.infinity, of: 10) == 10)
        #expect(LatencyHistogram.rank(0.5, of: 0) == 0)
        // A saturated count: Double(Int.max) rounds up to 2^63, which Int(_:) cannot hold.
        #expect(LatencyHistogram.rank(1, of: .max) == .max)
        let nearlyAll = LatencyHistogram.rank(1.0.nextDown, of: .max)
        #expect(nearlyAll < .max && nearlyAll > .max - 2048, "p just below 1 of a saturated count")
        #expect(LatencyHistogram.rank(0.5, of: .max) == Int.max / 2 + 1)
    }
}

/// The collector as the CLI uses it: a hook of the engine.
@Suite struct MetricsCollectorTests {
    @Test func countsCallsFailuresRetriesAndTokensPerModel() async throws {
        let clock = ManualClock()
        let rateLimited = APIError(.rateLimited, "slow down", provider: "scripted", retryable: true)
        let fatal = APIError(.providerError, "nope", provider: "scripted", retryable: false)
        let provider = ScriptedProvider(script: [
            "a": [.fail(rateLimited), .answer("one two three four")],   // one retry, then an answer
            "b": [.fail(fatal)],
        ])
        let metrics = MetricsCollector()
        var configuration = EngineConfiguration(clock: clock, retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .zero, jitter: 0))
        configuration.hooks = [metrics]
        let engine = try PipelineEngine(provider: provider, configuration: configuration)
        let first = Task { await engine.run(PlannedCommand(id: "x", plan: ExecutionPlan(call: APICall(model: "a", parts: [.text("hi")])))) }
        // The 429 pauses the limiter for its backoff: drive the clock until the command ends.
        var yields = 0
        while !(metrics.snapshot().rows.first { $0.model == "a" }.map { $0.calls == 1 } ?? false) && yields < 1_000_000 {
            yields += 1
            await Task.yield()
            if clock.sleeperCount > 0 { clock.advance(by: .seconds(1)) }
        }
        #expect(await first.value.succeeded)
        let failed = await engine.run(PlannedCommand(id: "y", plan: ExecutionPlan(calls: [APICall(model: "b", parts: [.text("x")]), APICall(model: "b", parts: [.text("y")])])))
        #expect(!failed.succeeded)
        let rows = metrics.snapshot().rows
        #expect(rows.map(\.model) == ["a", "b"])
        let a = try #require(rows.first)
        #expect(a.provider == "scripted" && a.calls == 1 && a.succeeded == 1 && a.failed == 0 && a.retries == 1)
        #expect(a.inputTokens == 1 && a.outputTokens == 4)
        let b = try #require(rows.last)
        #expect(b.calls == 2 && b.succeeded == 0 && b.retries == 0)
        #expect(b.failures.map(\.kind) == ["provider_error"] && b.failures.map(\.count) == [2])
    }

    @Test func latencyRunsFromTheFirstAttemptToTheEndOfTheCall() async throws {
        let clock = ManualClock()
        struct Slow: GenerationCapability {
            let clock: ManualClock
            var providerName: String { "slow" }
            func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
                try await clock.sleep(for: .milliseconds(request.model == "fast" ? 10 : 700))
                return GenerationResponse(text: "ok", model: request.model, usage: Usage(promptTokens: 3, completionTokens: 1, cachedTokens: 2))
            }
        }
        let metrics = MetricsCollector()
        var configuration = EngineConfiguration(clock: clock)
        configuration.hooks = [metrics]
        let engine = try PipelineEngine(provider: Slow(clock: clock), configuration: configuration)
        for model in ["fast", "slow"] {
            let task = Task { await engine.run(PlannedCommand(id: model, plan: ExecutionPlan(call: APICall(model: model, parts: [.text("q")])))) }
            #expect(await clock.waitForSleepers(1))
            clock.advance(by: .milliseconds(700))
            #expect(await task.value.succeeded)
        }
        let rows = metrics.snapshot().rows
        #expect(rows.map(\.model) == ["fast", "slow"])
        #expect(rows[0].p50 >= .milliseconds(10) && rows[0].p50 < .milliseconds(700), "the fast call ended at 10 ms even though the clock moved 700")
        #expect(rows[1].p99 >= .milliseconds(680) && rows[1].p99 <= .milliseconds(720))
        #expect(rows[1].cachedTokens == 2 && rows[1].inputTokens == 3)
    }
}

@Suite struct MetricsCollectorCapTests {
    /// Model names come from input: past `maxRows` pairs, calls share one `others` row.
    @Test func rowsBeyondTheCapShareOneOthersRow() async throws {
        let metrics = MetricsCollector(maxRows: 3)
        var configuration = EngineConfiguration(clock: ManualClock())
        configuration.hooks = [metrics]
        let engine = try PipelineEngine(provider: ScriptedProvider(script: [:]), configuration: configuration)
        for model in ["m1", "m2", "m3", "m4", "m5", "m1", "m5"] {
            _ = await engine.run(PlannedCommand(id: model, plan: ExecutionPlan(call: APICall(model: model, parts: [.text("q")]))))
        }
        let rows = metrics.snapshot().rows
        #expect(rows.map(\.model) == ["m1", "m2", "m3", "*"])
        #expect(rows.map(\.others) == [false, false, false, true])
        #expect(rows.map(\.calls) == [2, 1, 1, 3], "m4, m5 and m5 again count in the others row")
        #expect(MetricsCollector(maxRows: 0).maxRows == 1)
    }
}
