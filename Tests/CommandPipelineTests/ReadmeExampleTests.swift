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
    }
}
