import CommandPipeline
import Testing

/// The README's library example, verbatim in behaviour, so the README stays true.
@Suite struct ReadmeExampleTests {
    @Test func theReadmeExampleWorks() async throws {
        let engine = PipelineEngine(provider: MockProvider.make())
        let command = PlannedCommand(
            id: "paper-42",
            plan: ExecutionPlan(
                calls: [APICall(model: "mock", parts: [.text("List the three main claims.")])],
                sharedParts: [.text("…the paper…")],
                fallbackCall: APICall(model: "mock-lite", parts: [.text("List the three main claims.")]),
                cache: CachePlan(ttlSeconds: 3600)))
        let finalized = try #require(await engine.executeWithFallback(command).success)
        #expect(finalized.responses[0].text == "echo: List the three main claims.")
        #expect(finalized.telemetry.cache?.created == true)
        #expect(finalized.usage.cachedTokens > 0)

        let outcome = await engine.run(command)
        #expect(outcome.partialResponses.isEmpty && outcome.failedCalls.isEmpty && outcome.telemetry.retries == 0)

        var streamed = ""
        for await event in engine.events(for: command) {
            if case .textDelta(_, let text) = event.kind { streamed += text }
        }
        #expect(streamed == "echo: List the three main claims.")
    }
}
