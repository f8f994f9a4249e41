import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Helpers shared by the Anthropic suites.
enum AnthropicPeers {
    static func provider(_ base: URL, key: String? = nil, variable: String = "ANTHROPIC_API_KEY", _ capabilities: Set<ProviderCapability>? = nil) -> any GenerationCapability {
        AnthropicProvider.make(AnthropicConfiguration(baseURL: base, apiKey: key.map(APIKey.init), apiKeyVariable: variable, capabilities: capabilities, requestTimeout: 30))
    }

    /// The deltas and the final response of a stream.
    static func stream(_ provider: any GenerationCapability, _ request: GenerationRequest) async throws -> (deltas: String, final: GenerationResponse?) {
        let streaming = try #require(provider.streaming)
        var deltas = ""
        var final: GenerationResponse?
        for try await chunk in streaming.stream(request) {
            switch chunk {
            case .delta(let d): deltas += d
            case .toolCall: break
            case .completed(let r): final = r
            }
        }
        return (deltas, final)
    }

    /// The `APIError` a stream ends with, and the text it delivered first.
    static func streamFailure(_ provider: any GenerationCapability, _ request: GenerationRequest) async throws -> (APIError?, String) {
        let streaming = try #require(provider.streaming)
        var received = ""
        do {
            for try await chunk in streaming.stream(request) {
                if case .delta(let d) = chunk { received += d }
            }
        } catch let error as APIError {
            return (error, received)
        }
        return (nil, received)
    }

    static func failure(_ provider: any GenerationCapability, _ request: GenerationRequest) async -> APIError? {
        do {
            _ = try await provider.generate(request)
            return nil
        } catch {
            return error as? APIError
        }
    }

    /// A JSON request to a peer's control API.
    @discardableResult
    static func control(_ url: URL, method: String = "POST", json: String? = nil) async throws -> [String: Any] {
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = method
        if let json {
            request.httpBody = Data(json.utf8)
            request.setValue("application/json", forHTTPHeaderField: "content-type")
        }
        let (data, _) = try await URLSession.shared.data(for: request)
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    /// Runs a tool to its end, or kills it after `timeout` seconds.
    static func run(_ executable: URL, _ arguments: [String], timeout: TimeInterval) throws -> (status: Int32, output: String) {
        try runProcess(executable, arguments, timeout: timeout)
    }

    static var environment: [String: String] { ProcessInfo.processInfo.environment }
}

/// The adapter and the CLI against llmock (PyPI), which serves Anthropic's Messages API under
/// `/anthropic` with the full streaming event sequence and scripted faults.
@Suite(.serialized) struct AnthropicLLMockTests {
    var origin: URL { get throws { try Peers.llmockAnthropic.get() } }
    var base: URL { get throws { try origin.appendingPathComponent("anthropic") } }
    var provider: any GenerationCapability { get throws { AnthropicPeers.provider(try base, [.streaming]) } }

    /// Queues llmock behaviours for requests naming `model` only, so suites cannot disturb each other.
    func script(_ behaviours: String) async throws {
        try await AnthropicPeers.control(try origin.appendingPathComponent("_llmock/scenario"), json: #"{"behaviors":\#(behaviours)}"#)
    }

    @Test func messagesWithSystemAndHistory() async throws {
        let request = GenerationRequest(
            model: "claude-sonnet-4-6",
            parts: [.history([.init(question: "Hi", answer: "Hello")]), .text("What is a pipeline?")],
            config: GenerationConfig(systemInstruction: "Be brief.", temperature: 0.3, maxTokens: 200, stop: ["###"]))
        let response = try await provider.generate(request)
        #expect(response.text.hasPrefix("Hello! You said:"))
        #expect(response.text.contains("What is a pipeline?"))
        #expect(response.model == "claude-sonnet-4-6")
        #expect(response.finishReason == "stop")
        #expect(response.usage.promptTokens > 0 && response.usage.completionTokens > 0)
        #expect(response.usage.totalTokens == response.usage.promptTokens + response.usage.completionTokens)
    }

    @Test func streamingGivesTheSameAnswerPieceByPiece() async throws {
        let request = GenerationRequest(model: "claude-haiku-4-5", parts: [.text("stream this sentence please")])
        let (deltas, final) = try await AnthropicPeers.stream(try provider, request)
        let response = try #require(final)
        #expect(deltas == response.text)
        #expect(response.text == "Hello! You said: stream this sentence please")
        #expect(response.usage.completionTokens > 0 && response.usage.promptTokens > 0)
        #expect(response.finishReason == "stop")
    }

    @Test func overloadedAndRateLimitedAnswersAreRetryable() async throws {
        try await script(#"[{"type":"fail","status":529,"match":{"model":"claude-llmock-529"}},{"type":"fail","status":429,"retry_after":3,"match":{"model":"claude-llmock-429"}}]"#)
        let overloaded = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-llmock-529", parts: [.text("x")])))
        #expect(overloaded.kind == .providerError && overloaded.retryable)
        #expect(overloaded.code == "overloaded_error")
        #expect(overloaded.message.contains("HTTP 529"))
        let limited = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-llmock-429", parts: [.text("x")])))
        #expect(limited.kind == .rateLimited && limited.retryable)
        #expect(limited.code == "rate_limit_error")
        #expect(limited.retryAfter == .seconds(3))
    }

    @Test func theEngineRetriesAnOverloadedAnswerOnce() async throws {
        try await script(#"[{"type":"fail","status":529,"retry_after":0,"match":{"model":"claude-llmock-retry"}}]"#)
        let engine = try PipelineEngine(
            provider: try provider, configuration: EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1))))
        let result = await engine.execute(PlannedCommand(id: "retry", plan: ExecutionPlan(call: APICall(model: "claude-llmock-retry", parts: [.text("again")]))))
        let finalized = try #require(result.success)
        #expect(finalized.telemetry.retries == 1)
        #expect(finalized.responses.first?.text == "Hello! You said: again")
    }

    @Test(arguments: [("truncate", "stream_truncated"), ("disconnect", ""), ("malformed", "stream_malformed")])
    func aBrokenStreamIsNeverASuccess(kind: String, code: String) async throws {
        let model = "claude-llmock-stream-\(kind)"
        try await script(#"[{"type":"stream_fault","kind":"\#(kind)","after_chunks":4,"match":{"model":"\#(model)","stream":true}}]"#)
        let (error, received) = try await AnthropicPeers.streamFailure(try provider, GenerationRequest(model: model, parts: [.text("one two three four five six")]))
        let failure = try #require(error, "a \(kind) stream was accepted as complete: '\(received)'")
        #expect(failure.retryable)
        if !code.isEmpty { #expect(failure.code == code) }
        // Only part of the answer arrived before the fault.
        #expect(received.count < "Hello! You said: one two three four five six".count, "'\(received)'")
    }

    @Test func theCLIRunsCommandsAgainstLLMock() async throws {
        let input = """
            {"id":"one","model":"claude-sonnet-4-6","prompt":"Hello there","system":"Be terse."}
            {"id":"fan","model":"claude-sonnet-4-6","prompts":["First?","Second?"]}
            """
        let run = try await runPipeline(
            ["--provider", "anthropic", "--base-url", try base.absoluteString, "--capabilities", "generation,streaming", "--quiet"], stdin: input)
        #expect(run.status == 0, "\(run.stderr)")
        let records = run.records
        #expect(records.map { $0["status"] as? String } == ["succeeded", "succeeded"])
        #expect(records[0][path: "responses.0.text"] as? String == "Hello! You said: Hello there")
        #expect(records[1][path: "responses.1.text"] as? String == "Hello! You said: Second?")
        #expect(records[0][path: "telemetry.provider"] as? String == "anthropic")
        let capabilities = try await runPipeline(
            ["capabilities", "--provider", "anthropic", "--base-url", try base.absoluteString, "--capabilities", "generation,streaming"])
        #expect(capabilities.stdout.contains(#""capabilities":["generation","streaming"]"#), "\(capabilities.stdout)\(capabilities.stderr)")
    }
}

/// The adapter and the CLI against fakellm (PyPI), a second server that speaks Anthropic's
/// Messages API and streams its named events.
@Suite(.serialized) struct AnthropicFakeLLMTests {
    var base: URL { get throws { try Peers.fakeLLM.get() } }
    var provider: any GenerationCapability { get throws { AnthropicPeers.provider(try base, [.streaming]) } }

    @Test func messagesAndStreamingAgree() async throws {
        let request = GenerationRequest(
            model: "claude-sonnet-4-6", parts: [.text("What is the capital of France?")], config: GenerationConfig(systemInstruction: "Answer in one sentence."))
        let response = try await provider.generate(request)
        #expect(response.text == "Paris is the capital of France.")
        #expect(response.finishReason == "stop")
        #expect(response.usage.promptTokens > 0)
        let (deltas, final) = try await AnthropicPeers.stream(try provider, request)
        #expect(deltas == "Paris is the capital of France.")
        #expect(final?.text == deltas)
        #expect(final?.usage.completionTokens ?? 0 > 0)
    }

    @Test func anOverloadedAnswerIsRetryableAndNamesTheServer() async throws {
        let error = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-sonnet-4-6", parts: [.text("please overload now")])))
        #expect(error.retryable)
        #expect(error.message.contains("HTTP 529") && error.message.contains("Overloaded (mock)"))
        let limited = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-sonnet-4-6", parts: [.text("please rate limit me")])))
        #expect(limited.kind == .rateLimited && limited.retryable)
    }

    @Test func theCLIRunsCommandsAgainstFakeLLM() async throws {
        let input = #"{"id":"paris","model":"claude-sonnet-4-6","prompt":"capital of France?"}"# + "\n" + #"{"id":"overload","model":"claude-sonnet-4-6","prompt":"please overload"}"#
        let run = try await runPipeline(
            ["--provider", "anthropic", "--base-url", try base.absoluteString, "--capabilities", "generation,streaming", "--max-attempts", "1", "--quiet"],
            stdin: input)
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.records.map { $0["status"] as? String } == ["succeeded", "failed"])
        #expect(run.records[0][path: "responses.0.text"] as? String == "Paris is the capital of France.")
        #expect(run.records[1][path: "error.retryable"] as? Bool == true)
        #expect(run.records[1][path: "error.provider"] as? String == "anthropic")
    }
}
