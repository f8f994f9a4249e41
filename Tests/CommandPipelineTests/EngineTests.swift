import CommandPipeline
import Foundation
import Testing

@Suite struct EngineTests {
    @Test func aSingleCallRunsEndToEndOnTheMock() async throws {
        let engine = PipelineEngine(provider: MockProvider.make())
        let cmd = PlannedCommand(
            id: "hello", plan: ExecutionPlan(call: APICall(model: "mock", parts: [.text("Hello")])), metadata: ["batch": "b1"])
        let finalized = try #require(await engine.execute(cmd).success)
        #expect(finalized.id == "hello")
        #expect(finalized.responses == [CallResponse(callIndex: 0, response: GenerationResponse(
            text: "echo: Hello", model: "mock", finishReason: "stop", usage: Usage(promptTokens: 2, completionTokens: 3)))])
        #expect(finalized.usage.totalTokens == 5)
        #expect(finalized.telemetry.provider == "mock")
        #expect(finalized.metadata == ["batch": "b1"])
        #expect(finalized.telemetry.cache == nil)
        #expect(finalized.telemetry.tokenValidation == nil)
    }

    @Test func invalidCommandsFailBeforeAnythingRunsAndNameEveryProblem() async throws {
        let provider = RecordingProvider(clock: ManualClock())
        let bad = PlannedCommand(
            id: "bad", plan: ExecutionPlan(calls: []), tokenEstimate: TokenEstimate(minTokens: 10, expectedTokens: 5, maxTokens: 20))
        let error = try #require(await PipelineEngine(provider: provider).execute(bad).failure)
        #expect(error.kind == .invalidCommand)
        #expect(error.path == "plan.calls")
        #expect(error.message.contains("at least one call"))
        #expect(error.message.contains("token_estimate"))
        #expect(provider.recorder.snapshot.generateCalls == 0)
    }

    @Test func tokenValidationComparesActualUsageWithTheEstimate() async throws {
        let engine = PipelineEngine(provider: MockProvider.make())
        // "Hello" → 2 prompt tokens; "echo: Hello" → 3 completion tokens: 5 in all.
        let inRange = try #require(await engine.execute(command(prompts: ["Hello"], estimate: TokenEstimate(minTokens: 4, expectedTokens: 4, maxTokens: 6, confidence: 0.8))).success)
        let validation = try #require(inRange.telemetry.tokenValidation)
        #expect(validation.actual == 5)
        #expect(validation.inRange)
        #expect(validation.accuracyRatio == 1.25)

        let outOfRange = try #require(await engine.execute(command(prompts: ["Hello"], estimate: TokenEstimate(minTokens: 100, expectedTokens: 200, maxTokens: 300))).success)
        #expect(outOfRange.telemetry.tokenValidation?.inRange == false)
        #expect(outOfRange.telemetry.tokenValidation?.accuracyRatio == 0.025)

        #expect(TokenValidation(estimate: TokenEstimate(minTokens: 0, expectedTokens: 0, maxTokens: 0), actual: 0).accuracyRatio == 0)
    }

    @Test func fallbackRescuesAFailedPrimary() async throws {
        let engine = PipelineEngine(provider: MockProvider.make(MockConfiguration(failingModels: ["big"])))
        let cmd = command(model: "big", prompts: ["Q"], shared: [.text("doc")], fallback: APICall(model: "small", parts: [.text("Q")]))
        let finalized = try #require(await engine.executeWithFallback(cmd).success)
        #expect(finalized.telemetry.usedFallback)
        #expect(finalized.telemetry.primaryError?.kind == .providerError)
        #expect(finalized.telemetry.primaryError?.message.contains("unavailable") == true)
        #expect(finalized.responses.map(\.model) == ["small"])
        // The fallback gets the shared parts: "doc" (1 token) + "Q" (1 token).
        #expect(finalized.usage.promptTokens == 2)

        // Without fallback the same command fails.
        #expect(await engine.execute(cmd).failure?.kind == .providerError)
    }

    @Test func whenBothFailTheErrorReportsBoth() async throws {
        let engine = PipelineEngine(provider: MockProvider.make(MockConfiguration(failingModels: ["big", "small"])))
        let cmd = command(model: "big", fallback: APICall(model: "small", parts: [.text("Q")]))
        let outcome = await engine.run(cmd)
        let error = try #require(outcome.error)
        #expect(outcome.telemetry.primaryError?.message.contains("'big'") == true)
        #expect(error.message.contains("'small'"))
        #expect(error.message.contains("primary failed first"))
        #expect(outcome.telemetry.usedFallback == true)
    }

    @Test func fallbackRunsWithoutUploadsOrCache() async throws {
        let dir = try temporaryDirectory(files: ["doc.txt": "document"])
        let clock = ManualClock()
        var base = RecordingProvider(clock: clock)
        base.failing = ["big"]
        let provider = UploadingProvider(base: base)
        let engine = PipelineEngine(provider: provider)
        let cmd = command(
            model: "big", shared: [.filePlaceholder(FilePlaceholder(path: dir.appendingPathComponent("doc.txt").path))],
            fallback: APICall(model: "small", parts: [.text("Q")]), cache: CachePlan())
        let finalized = try #require(await engine.executeWithFallback(cmd).success)
        #expect(provider.recorder.snapshot.uploads.count == 1, "the fallback did not upload again")
        let fallbackRequest = try #require(provider.recorder.snapshot.requests.last)
        #expect(fallbackRequest.model == "small")
        #expect(fallbackRequest.cache == nil)
        #expect(fallbackRequest.parts.first == .fileRef(FileReference(uri: "test://doc.txt", mimeType: "text/plain")), "the fallback reuses the uploaded shared part")
        #expect(finalized.telemetry.uploads.performed == 1)
    }

    @Test func cancellingACommandEndsItAsCancelledWithNothingLeftRunning() async throws {
        let clock = ManualClock()
        var provider = RecordingProvider(clock: clock)
        provider.latency["m"] = .seconds(60)
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock))
        let task = Task { await engine.executeWithFallback(command(prompts: ["a", "b", "c"], fallback: APICall(model: "m", parts: [.text("x")]))) }
        await clock.waitForSleepers(3)
        task.cancel()
        let error = try #require(await task.value.failure)
        #expect(error.kind == .cancelled)
        #expect(provider.recorder.snapshot.inFlight == 0, "no provider call is left running")
        #expect(clock.sleeperCount == 0)
        #expect(provider.recorder.snapshot.generateCalls == 3, "the fallback did not run after a cancellation")
    }

    @Test func sinksSeeEveryResultAndCannotChangeIt() async throws {
        let sink = InMemoryTelemetrySink()
        let engine = try PipelineEngine(provider: MockProvider.make(MockConfiguration(failingModels: ["x"])), configuration: EngineConfiguration(telemetrySinks: [sink]))
        _ = await engine.executeWithFallback(command("ok"))
        _ = await engine.executeWithFallback(command("bad", model: "x"))
        #expect(sink.records.count == 2)
        #expect(sink.records[0].success?.id == "ok")
        #expect(sink.records[1].failure?.kind == .providerError)
    }

    @Test func customStagesRunInTheGivenOrder() async throws {
        struct Shout: ExecutionStage {
            var name: String { "shout" }
            func applies(to state: ExecutionState) -> Bool { !state.responses.isEmpty }
            func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState {
                var responses = state.responses
                for i in responses.indices { responses[i].text = responses[i].text.uppercased() }
                return state.with(responses: responses)
            }
        }
        let engine = PipelineEngine(provider: MockProvider.make(), stages: [GenerateStage(), Shout(), TelemetryStage()])
        let finalized = try #require(await engine.execute(command(prompts: ["hi"])).success)
        #expect(finalized.responses.first?.text == "ECHO: HI")
        // Its time is in telemetry under its name, and its events in the log: no other file knows it.
        #expect(finalized.telemetry.durations.stages.map(\.name) == ["generate", "shout"])
        let record = WrittenRecords.succeeded(finalized, index: 0)
        #expect(record.objectValue?["telemetry"]?.objectValue?["durations_ms"]?.objectValue?["shout"] != nil)
    }
}
