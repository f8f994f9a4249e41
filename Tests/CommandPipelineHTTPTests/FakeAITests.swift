import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// The adapter and the CLI against FakeAI, a real OpenAI-compatible server from PyPI.
@Suite(.serialized) struct FakeAITests {
    func engine(_ capabilities: Set<ProviderCapability> = [.generation, .streaming]) throws -> PipelineEngine {
        let base = try Peers.fakeAI.get()
        return try PipelineEngine(
            provider: OpenAIProvider.make(OpenAIConfiguration(baseURL: base, capabilities: capabilities)),
            configuration: EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(50))))
    }

    @Test func textGenerationWithSystemInstructionAndHistory() async throws {
        let plan = ExecutionPlan(calls: [APICall(
            model: "openai/gpt-oss-120b",
            parts: [.history([HistoryTurn(question: "What is 2+2?", answer: "4")]), .text("And 3+3?")],
            config: GenerationConfig(systemInstruction: "Answer with a number.", temperature: 0.2, maxTokens: 50))])
        let finalized = try #require(await engine().execute(PlannedCommand(id: "fake", plan: plan)).success)
        let response = try #require(finalized.responses.first)
        #expect(!response.text.isEmpty)
        #expect(response.model == "openai/gpt-oss-120b")
        #expect(response.usage.promptTokens > 0)
        #expect(response.usage.totalTokens == response.usage.promptTokens + response.usage.completionTokens)
        #expect(finalized.telemetry.provider == "openai")
    }

    @Test func severalCallsFanOut() async throws {
        let plan = ExecutionPlan(
            calls: (1...5).map { APICall(model: "gpt-4o-mini", parts: [.text("Question \($0)?")], config: GenerationConfig(maxTokens: 20)) },
            sharedParts: [.text("Shared context for every call.")])
        let finalized = try #require(await engine().execute(PlannedCommand(id: "fan", plan: plan)).success)
        #expect(finalized.responses.map(\.callIndex) == [0, 1, 2, 3, 4])
        #expect(finalized.responses.allSatisfy { !$0.text.isEmpty })
        #expect(finalized.usage.totalTokens == finalized.responses.reduce(0) { $0 + $1.usage.totalTokens })
    }

    @Test func streamingDeliversDeltasAndAFinalResponse() async throws {
        let provider = try engine().provider
        let streaming = try #require(provider.streaming)
        var deltas = ""
        var final: GenerationResponse?
        for try await chunk in streaming.stream(GenerationRequest(model: "gpt-4o-mini", parts: [.text("Tell me a story")], config: GenerationConfig(maxTokens: 30))) {
            switch chunk {
            case .delta(let d): deltas += d
            case .toolCall: break
            case .completed(let r): final = r
            }
        }
        let response = try #require(final)
        #expect(!deltas.isEmpty)
        #expect(response.text == deltas)
        #expect(response.usage.completionTokens > 0)
    }

    @Test func aFileIsUploadedAndFakeAIRejectsFilePartsWith422() async throws {
        let file = try temporaryDirectory(files: ["report.pdf": "%PDF-1.4 a small report"]).appendingPathComponent("report.pdf")
        let engine = try engine([.generation, .uploads])
        let plan = ExecutionPlan(calls: [APICall(model: "gpt-4o-mini", parts: [.filePlaceholder(FilePlaceholder(path: file.path)), .text("Summarise.")])])
        let outcome = await engine.run(PlannedCommand(id: "file", plan: plan))
        let error = try #require(outcome.error)
        // The upload really happened (FakeAI returned a file id) …
        #expect(outcome.telemetry.uploads.performed == 1)
        // … and FakeAI's Chat Completions accepts no `file` content parts: a 422 with FastAPI's {"detail": …}.
        #expect(error.kind == .providerError)
        #expect(!error.retryable)
        #expect(error.message.contains("HTTP 422"))
        #expect(error.message.contains("Input should be"))
        #expect(outcome.telemetry.calls.first?.attempts == 1, "a 422 is not retried")
    }

    @Test func theCLIRunsAMixedFileAgainstFakeAI() async throws {
        let base = try Peers.fakeAI.get()
        let input = """
        {"id":"plain","model":"gpt-4o-mini","prompt":"Hello"}
        {"id":"system","model":"gpt-4o-mini","prompt":"Hello","system":"Be terse."}
        {"id":"fan","model":"gpt-4o-mini","prompts":["One?","Two?","Three?"]}
        {"id":"history","plan":{"calls":[{"model":"gpt-4o-mini","parts":[{"type":"history","turns":[{"question":"Hi","answer":"Hello"}]},{"type":"text","text":"How are you?"}],"config":{"max_tokens":20}}]}}
        {"id":"bad","model":"gpt-4o-mini","prompt":"x","temperature":3}
        """
        let run = try await runPipeline(["--provider", "openai", "--base-url", base.absoluteString, "--quiet"], stdin: input)
        #expect(run.status == 1, "\(run.stderr)")
        let records = run.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(records.map { $0["id"] as? String } == ["plain", "system", "fan", "history", "bad"])
        #expect(records.map { $0["status"] as? String } == ["succeeded", "succeeded", "succeeded", "succeeded", "failed"])
        for record in records.prefix(4) {
            let usage = record["usage"] as? [String: Any]
            #expect((usage?["total_tokens"] as? Int ?? 0) > 0)
            #expect((record["telemetry"] as? [String: Any])?["provider"] as? String == "openai")
        }
        #expect((records[2]["responses"] as? [Any])?.count == 3)

        let capabilities = try await runPipeline(["capabilities", "--provider", "openai", "--base-url", base.absoluteString, "--capabilities", "uploads,streaming"], stdin: "")
        #expect(capabilities.stdout.contains(#"["generation","uploads","streaming"]"#))
    }

    @Test func theCLIRefusesARemoteServerWithoutAKey() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["NO_SUCH_KEY_VAR"] = nil
        let run = try await runPipeline(["--provider", "openai", "--base-url", "https://api.example.invalid/v1", "--api-key-env", "NO_SUCH_KEY_VAR"], stdin: "{}", environment: environment)
        #expect(run.status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("$NO_SUCH_KEY_VAR"))
    }
}

extension Result {
    var failure: Failure? { if case .failure(let f) = self { f } else { nil } }
}
