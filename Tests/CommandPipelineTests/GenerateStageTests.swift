import CommandPipeline
import Testing

@Suite struct GenerateStageTests {
    @Test func fanOutReturnsResponsesInCallOrderWhateverFinishesFirst() async throws {
        let clock = ManualClock()
        var provider = RecordingProvider(clock: clock)
        // Earlier calls are slower, so they finish last.
        let models = (0..<5).map { "m\($0)" }
        for (i, model) in models.enumerated() { provider.latency[model] = .milliseconds(100 * (5 - i)) }
        let plan = ExecutionPlan(calls: models.map { APICall(model: $0, parts: [.text("q-\($0)")]) })
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock))
        let task = Task { await engine.execute(PlannedCommand(id: "f", plan: plan)) }
        await clock.waitForSleepers(5)
        clock.advance(by: .milliseconds(500))
        let finalized = try #require(await task.value.success)
        #expect(finalized.responses.map(\.callIndex) == [0, 1, 2, 3, 4])
        #expect(finalized.responses.map(\.text) == models.map { "echo: q-\($0)" })
    }

    @Test func fanOutNeverExceedsTheConcurrencyBound() async throws {
        let clock = ManualClock()
        var provider = RecordingProvider(clock: clock)
        provider.latency["m"] = .milliseconds(10)
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(maxConcurrentCalls: 3, clock: clock))
        let task = Task { await engine.execute(command(prompts: (0..<10).map { "p\($0)" })) }
        var finished = 0
        while finished < 10 {
            await clock.waitForSleepers(min(3, 10 - finished))
            let sleeping = clock.sleeperCount
            #expect(sleeping <= 3)
            clock.advance(by: .milliseconds(10))
            finished += sleeping
        }
        let finalized = try #require(await task.value.success)
        #expect(finalized.responses.count == 10)
        #expect(provider.recorder.snapshot.maxInFlight == 3)
    }

    @Test func partialFailureKeepsTheResponsesThatSucceeded() async throws {
        var provider = RecordingProvider(clock: ManualClock())
        provider.failing = ["bad"]
        let plan = ExecutionPlan(calls: [
            APICall(model: "good", parts: [.text("a")]), APICall(model: "bad", parts: [.text("b")]),
            APICall(model: "good", parts: [.text("c")]),
        ])
        let outcome = await PipelineEngine(provider: provider).run(PlannedCommand(id: "p", plan: plan))
        let error = try #require(outcome.error)
        #expect(error.kind == .providerError)
        #expect(outcome.failedCalls == [1])
        #expect(outcome.partialResponses.map(\.callIndex) == [0, 2])
        #expect(error.message.contains("1 of 3 calls failed"))
        #expect(outcome.telemetry.provider == "recording")
    }

    /// When the fallback fails too, what is left is the primary's: its calls that succeeded (the
    /// fallback's answer, had it had one, would have been the result) and its failed calls.
    @Test func aFailedFallbackLeavesThePrimarysPartialResponses() async throws {
        var provider = RecordingProvider(clock: ManualClock())
        provider.failing = ["bad", "also-bad"]
        let plan = ExecutionPlan(
            calls: [APICall(model: "good", parts: [.text("a")]), APICall(model: "bad", parts: [.text("b")])],
            fallbackCall: APICall(model: "also-bad", parts: [.text("c")]))
        let outcome = await PipelineEngine(provider: provider).run(PlannedCommand(id: "p", plan: plan))
        let error = try #require(outcome.error)
        #expect(error.message.contains("fallback call (also-bad) failed"))
        #expect(outcome.telemetry.usedFallback)
        #expect(outcome.partialResponses.map(\.callIndex) == [0] && outcome.partialResponses.map(\.model) == ["good"])
        #expect(outcome.failedCalls == [1])
    }

    @Test func sharedPartsComeBeforeEachCallsOwnParts() async throws {
        let provider = RecordingProvider(clock: ManualClock())
        _ = await PipelineEngine(provider: provider).execute(command(prompts: ["a", "b"], shared: [.text("doc")]))
        let requests = provider.recorder.snapshot.requests.sorted { $0.parts.last!.hashValue < $1.parts.last!.hashValue }
        #expect(Set(requests.map(\.parts)) == [[.text("doc"), .text("a")], [.text("doc"), .text("b")]])
    }
}
