import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// Issue 22, part 4, against public peers: fakellm's OpenAI route streams without any usage
/// (it ignores `stream_options.include_usage`), so a streamed answer's usage is unknown, never
/// zeros; FakeAI takes images as `image_url` parts, and an image in `files` goes as one.
@Suite(.serialized) struct UsageInteropTests {
    /// fakellm's OpenAI-compatible route (`Peers.fakeLLM` is the origin).
    var fakeLLM: URL { get throws { try Peers.fakeLLM.get().appendingPathComponent("v1") } }

    @Test func aStreamWithoutUsageIsUnreportedAndAWholeAnswerReportsIt() async throws {
        let provider = OpenAIProvider.make(OpenAIConfiguration(baseURL: try fakeLLM, capabilities: [.generation, .streaming]))
        let request = GenerationRequest(model: "gpt-4o-mini", parts: [.text("What is the capital of France?")])
        let whole = try await provider.generate(request)
        #expect(whole.usage.isReported && whole.usage.promptTokens > 0, "fakellm reports usage on whole answers")
        var final: GenerationResponse?
        var deltas = ""
        for try await chunk in try #require(provider.streaming).stream(request) {
            switch chunk {
            case .delta(let d): deltas += d
            case .toolCall: break
            case .completed(let r): final = r
            }
        }
        let streamed = try #require(final)
        #expect(streamed.text == "Paris is the capital of France." && streamed.text == deltas)
        #expect(streamed.usage == .unreported, "no usage came: unknown, not zero")
    }

    @Test func theCLIWritesUnknownUsageAsNullAndCountsIt() async throws {
        let dir = try temporaryDirectory(files: [
            "models.json": #"{"models": {"gpt-4o-mini": {"provider": "openai", "context_window": 128000, "max_output_tokens": 4096, "prices": {"input": 0.15, "cached_input": 0.075, "output": 0.6}}}}"#
        ])
        let run = try await runPipeline(
            ["--provider", "openai", "--base-url", try fakeLLM.absoluteString, "--capabilities", "generation,streaming", "--events",
             "--models", "models.json", "--max-cost", "10", "--stats-json", "stats.json", "--max-attempts", "1"],
            stdin: #"{"id":"paris","model":"gpt-4o-mini","prompt":"capital of France?"}"#, currentDirectory: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let result = try #require(run.records.first { $0["type"] as? String == "command_succeeded" }?["result"] as? [String: Any], "\(run.stdout)")
        #expect(result[path: "responses.0.text"] as? String == "Paris is the capital of France.")
        for prefix in ["usage", "responses.0.usage"] {
            #expect(result[path: "\(prefix).prompt_tokens"] is NSNull, "\(prefix): \(String(describing: result[path: prefix]))")
            #expect(result[path: "\(prefix).total_tokens"] is NSNull)
            #expect(result[path: "\(prefix).unreported_calls"] as? Int == 1)
        }
        #expect(result[path: "responses.0.cost"] == nil, "the call's cost is unknown")
        #expect(result[path: "telemetry.cost.unreported_calls"] as? Int == 1)
        #expect(result[path: "telemetry.cost.usd"] as? Double == 0)
        #expect(result[path: "telemetry.calls.0.attempts"] as? Int == 1)
        #expect(run.stderr.contains("cost at least $0.000000") && run.stderr.contains("1 call without reported usage"), "\(run.stderr)")
        let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("stats.json"))) as? [String: Any] ?? [:]
        #expect(stats[path: "cost.unreported_calls"] as? Int == 1, "\(stats)")
        #expect(stats[path: "models.0.tokens.unreported_calls"] as? Int == 1, "\(stats)")
    }

    /// 1×1 PNG.
    static let png = Data(base64Encoded: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")!

    @Test(arguments: [Set<ProviderCapability>([.generation]), [.generation, .uploads]])
    func anImageInFilesGoesAsAnImagePartToFakeAI(capabilities: Set<ProviderCapability>) async throws {
        let dir = try temporaryDirectory()
        let image = dir.appendingPathComponent("pixel.png")
        try Self.png.write(to: image)
        let engine = try PipelineEngine(
            provider: OpenAIProvider.make(OpenAIConfiguration(baseURL: try Peers.fakeAI.get(), capabilities: capabilities)),
            configuration: EngineConfiguration(retryPolicy: .none))
        // FakeAI counts an image by its size in tiles: a model with a large context window.
        let plan = ExecutionPlan(calls: [APICall(model: "openai/gpt-oss-120b", parts: [.filePlaceholder(FilePlaceholder(path: image.path)), .text("What is in this picture?")])])
        let outcome = await engine.run(PlannedCommand(id: "pixel", plan: plan))
        // Before: a `file` part FakeAI refused with 422 (uploads), or capability_missing (none).
        #expect(outcome.succeeded, "\(String(describing: outcome.error))")
        #expect(outcome.telemetry.uploads == UploadCounts(), "the image went inline, not as an upload")
        #expect(outcome.result.success?.responses.first?.text.isEmpty == false)
    }

    @Test func theAdapterTakesImagesInlineUpToTwentyMegabytes() throws {
        let adapter = try #require(OpenAIProvider.make(OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:1/v1")!)).inlineFiles)
        #expect(adapter.inlineLimit(for: "image/png") == 20 << 20)
        #expect(adapter.inlineLimit(for: "IMAGE/JPEG") == 20 << 20)
        #expect(adapter.inlineLimit(for: "application/pdf") == nil, "PDFs upload as file parts")
        #expect(adapter.inlineLimit(for: "image/tiff") == nil, "Chat Completions reads PNG, JPEG, WEBP, GIF")
    }

    @Test func aPartTheAdapterCannotSendMakesNoAttempt() async throws {
        // Nothing listens on port 1: the part is refused while the request is built, before any connection.
        let engine = try PipelineEngine(
            provider: OpenAIProvider.make(OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:1/v1")!, capabilities: [.generation])),
            configuration: EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .zero, jitter: 0)))
        let plan = ExecutionPlan(calls: [APICall(model: "m", parts: [.inline(InlineData(mimeType: "application/zip", data: Data([1]))), .text("q")])])
        let outcome = await engine.run(PlannedCommand(id: "zip", plan: plan))
        #expect(outcome.error?.kind == .capabilityMissing)
        #expect(outcome.telemetry.calls.map(\.attempts) == [0])
    }
}
