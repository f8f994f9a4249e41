import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import Testing

/// The Anthropic adapter's request building, response and stream parsing and error mapping,
/// without a server.
@Suite struct AnthropicUnitTests {
    let configuration = AnthropicConfiguration(apiKey: APIKey("sk-ant-secret-key-77"), apiKeyVariable: "MY_ANTHROPIC_KEY")
    var builder: AnthropicRequestBuilder { AnthropicRequestBuilder(configuration: configuration, providerName: "anthropic") }
    var errors: AnthropicErrorMapping { AnthropicErrorMapping(configuration: configuration, providerName: "anthropic") }

    func body(_ request: GenerationRequest, _ purpose: AnthropicRequestBuilder.Purpose = .generate(stream: false)) throws -> JSONObject {
        try #require(try builder.body(for: request, purpose: purpose).objectValue)
    }

    func json(_ value: JSONValue?) -> String { value.map { JSONSerializer.serialize($0) } ?? "nil" }

    @Test func messagesCarrySystemHistoryMediaAndConfig() throws {
        let png = Data([0x89, 0x50, 0x4e, 0x47])
        let request = GenerationRequest(
            model: "claude-sonnet-4-6",
            parts: [
                .history([HistoryTurn(question: "Q1", answer: "A1")]),
                .text("Look:"), .inline(InlineData(mimeType: "image/png", data: png)),
                .inline(InlineData(mimeType: "application/pdf", data: Data("%PDF".utf8))),
            ],
            config: GenerationConfig(systemInstruction: "Be brief.", temperature: 0.5, topP: 0.9, stop: ["END"], seed: 7))
        let b = try body(request)
        #expect(b["model"] == "claude-sonnet-4-6")
        #expect(b["system"] == "Be brief.")
        #expect(b["max_tokens"] == .int(AnthropicConfiguration.defaultMaxTokens))
        #expect(b["temperature"] == .double(0.5) && b["top_p"] == .double(0.9))
        #expect(b["stop_sequences"] == ["END"])
        #expect(b["seed"] == nil && b["stream"] == nil)
        let messages = try #require(b["messages"]?.arrayValue)
        #expect(messages.map { $0.objectValue?["role"]?.stringValue } == ["user", "assistant", "user"])
        // A turn of one plain text part goes as a plain string; the others as blocks.
        #expect(json(messages[0]) == #"{"role":"user","content":"Q1"}"#)
        let last = try #require(messages[2].objectValue?["content"]?.arrayValue)
        #expect(json(last[1]) == #"{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw=="}}"#)
        #expect(json(last[2]) == #"{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERg=="}}"#)
    }

    @Test func maxTokensFromTheCommandAndStreamingFlag() throws {
        let b = try body(GenerationRequest(model: "m", parts: [.text("x")], config: GenerationConfig(maxTokens: 12)), .generate(stream: true))
        #expect(b["max_tokens"] == 12)
        #expect(b["stream"] == true)
        let counted = try body(GenerationRequest(model: "m", parts: [.text("x")], config: GenerationConfig(temperature: 1, maxTokens: 12)), .countTokens)
        #expect(counted["max_tokens"] == nil && counted["temperature"] == nil && counted["stream"] == nil)
    }

    @Test func providerOptionsMergeButCannotOverrideReservedKeys() throws {
        var config = GenerationConfig()
        config.providerOptions = ["top_k": 5, "metadata": ["user_id": "u1"]]
        let b = try body(GenerationRequest(model: "m", parts: [.text("x")], config: config))
        #expect(b["top_k"] == 5 && b["metadata"] != nil)
        for reserved in ["max_tokens", "messages", "system", "model", "stream"] {
            var bad = GenerationConfig()
            bad.providerOptions = [reserved: 1]
            let error = #expect(throws: APIError.self) { try builder.body(for: GenerationRequest(model: "m", parts: [.text("x")], config: bad), purpose: .generate(stream: false)) }
            #expect(error?.kind == .invalidCommand)
            #expect(error?.message.contains("provider_options.\(reserved)") == true)
            #expect(error?.path == "config.provider_options.\(reserved)")
        }
    }

    @Test func responseFormatMapsToOutputConfigOrSaysWhy() throws {
        var config = GenerationConfig()
        config.responseFormat = ["type": "json_schema", "json_schema": ["name": "x", "schema": ["type": "object"]]]
        let b = try body(GenerationRequest(model: "m", parts: [.text("x")], config: config))
        #expect(json(b["output_config"]) == #"{"format":{"type":"json_schema","schema":{"type":"object"}}}"#)
        config.responseFormat = ["type": "text"]
        #expect(try body(GenerationRequest(model: "m", parts: [.text("x")], config: config))["output_config"] == nil)
        #expect(AnthropicRequestBuilder.cacheControl(CacheReference(id: "c", key: "k", model: "m")) == nil)
        config.responseFormat = ["type": "json_object"]
        let error = #expect(throws: APIError.self) { try builder.body(for: GenerationRequest(model: "m", parts: [.text("x")], config: config), purpose: .generate(stream: false)) }
        #expect(error?.kind == .capabilityMissing)
        #expect(error?.message.contains("json_schema") == true)
    }

    @Test func partsTheAPICannotTakeFailBeforeSending() throws {
        let placeholder = #expect(throws: APIError.self) {
            try builder.body(for: GenerationRequest(model: "m", parts: [.filePlaceholder(FilePlaceholder(path: "/tmp/a.pdf"))]), purpose: .generate(stream: false))
        }
        #expect(placeholder?.kind == .capabilityMissing && placeholder?.message.contains("/tmp/a.pdf") == true)
        let audio = #expect(throws: APIError.self) {
            try builder.body(for: GenerationRequest(model: "m", parts: [.inline(InlineData(mimeType: "audio/wav", data: Data([1])))]), purpose: .generate(stream: false))
        }
        #expect(audio?.message.contains("part 0") == true)
        let file = try body(GenerationRequest(model: "m", parts: [.fileRef(FileReference(uri: "file_abc", mimeType: "application/pdf")), .text("?")]))
        #expect(json(file["messages"]).contains(#"{"type":"document","source":{"type":"file","file_id":"file_abc"}}"#))
    }

    func prefixRequest(ttl: Int, parts: [APIPart], prefix: Int, system: String? = "System.") -> GenerationRequest {
        let now = Date()
        let cache = CacheReference(id: "prefix:k", key: "k", model: "m", createdAt: now, expiresAt: now.addingTimeInterval(TimeInterval(ttl)), prefixPartCount: prefix)
        return GenerationRequest(model: "m", parts: parts, config: GenerationConfig(systemInstruction: system), cache: cache)
    }

    @Test func aPrefixCacheMarksTheLastSharedBlockWithTheTTLOfThePlan() throws {
        let b = try body(prefixRequest(ttl: 3600, parts: [.text("shared 1"), .text("shared 2"), .text("question")], prefix: 2))
        #expect(json(b["system"]) == #"[{"type":"text","text":"System."}]"#)
        #expect(json(b["messages"]) == #"[{"role":"user","content":[{"type":"text","text":"shared 1"},{"type":"text","text":"shared 2","cache_control":{"type":"ephemeral","ttl":"1h"}},{"type":"text","text":"question"}]}]"#)
        let short = try body(prefixRequest(ttl: 300, parts: [.text("shared"), .text("q")], prefix: 1))
        #expect(json(short["messages"]).contains(#""cache_control":{"type":"ephemeral","ttl":"5m"}"#))
        // The warm-up sends exactly the prefix, ends on a user turn, and writes one token.
        let warm = try body(prefixRequest(ttl: 300, parts: [.text("shared"), .history([.init(question: "q", answer: "a")])], prefix: 2), .warmUp)
        #expect(warm["max_tokens"] == 1)
        #expect(json(warm["messages"]) == #"[{"role":"user","content":[{"type":"text","text":"shared"},{"type":"text","text":"q"}]},{"role":"assistant","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral","ttl":"5m"}}]},{"role":"user","content":"."}]"#)
        // Nothing cacheable among the parts: the system instruction carries the breakpoint.
        let systemOnly = try body(prefixRequest(ttl: 300, parts: [.text(""), .text("q")], prefix: 1))
        #expect(json(systemOnly["system"]) == #"[{"type":"text","text":"System.","cache_control":{"type":"ephemeral","ttl":"5m"}}]"#)
        #expect(json(systemOnly["messages"]) == #"[{"role":"user","content":"q"}]"#)
        // Counting tokens sends no breakpoint.
        let counted = try body(prefixRequest(ttl: 300, parts: [.text("shared"), .text("q")], prefix: 1), .countTokens)
        #expect(!json(counted["messages"]).contains("cache_control"))
    }

    @Test func theEngineSendsTheWholeContextToAPrefixCache() {
        let shared: [APIPart] = [.text("shared")]
        let plan = ExecutionPlan(calls: [APICall(model: "m", parts: [.text("q")], config: GenerationConfig(systemInstruction: "S"))], sharedParts: shared, cache: CachePlan())
        let prefix = CacheReference(id: "prefix:k", key: "k", model: "m", prefixPartCount: 1)
        let state = ExecutionState(command: PlannedCommand(id: "c", plan: plan)).with(cache: prefix)
        let request = state.request(call: 0)
        #expect(request.parts == [.text("shared"), .text("q")])
        #expect(request.config.systemInstruction == "S")
        #expect(request.cache == prefix)
        let stored = CacheReference(id: "c1", key: "k", model: "m")
        let storedState = ExecutionState(command: PlannedCommand(id: "c", plan: plan)).with(cache: stored)
        let storedRequest = storedState.request(call: 0)
        #expect(storedRequest.parts == [.text("q")])
        #expect(storedRequest.config.systemInstruction == nil)
    }

    @Test func usageCountsCacheReadsAndWritesInsidePromptTokens() throws {
        let response = try AnthropicResponses.message(Data(#"""
            {"type":"message","model":"claude-x","content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"Hi"},{"type":"text","text":" there"}],
             "stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":2000,"cache_creation_input_tokens":300}}
            """#.utf8), requestedModel: "m", provider: "anthropic")
        #expect(response.text == "Hi there")
        #expect(response.model == "claude-x")
        #expect(response.usage == Usage(promptTokens: 2310, completionTokens: 5, totalTokens: 2315, cachedTokens: 2000, cacheCreationTokens: 300))
        let absurd = AnthropicResponses.usage(["input_tokens": -5, "output_tokens": .int(Int.max), "cache_read_input_tokens": .double(1e300)])
        #expect(absurd.promptTokens == 0 && absurd.completionTokens == Limits.reportedTokens.upperBound && absurd.cachedTokens == 0)
    }

    @Test func cacheWritesAndCacheKindsReachTheWire() {
        #expect(WrittenRecords.usage(Usage(promptTokens: 10, cachedTokens: 4)) == #"{"prompt_tokens":10,"completion_tokens":0,"total_tokens":10,"cached_tokens":4}"#)
        #expect(WrittenRecords.usage(Usage(promptTokens: 10, cacheCreationTokens: 6)).hasSuffix(#""cached_tokens":0,"cache_creation_tokens":6}"#))
        #expect((Usage(cacheCreationTokens: 2) + Usage(cacheCreationTokens: .max)).cacheCreationTokens == Limits.reportedTokens.upperBound)
        let prefix = CacheTelemetry(reference: CacheReference(id: "prefix:k", key: "k", model: "m", tokenCount: 2048, prefixPartCount: 1), key: "k", created: true)
        #expect(prefix.kind == "prefix" && prefix.tokenCount == 2048 && prefix.created && !prefix.reused)
        #expect(CacheTelemetry(reference: CacheReference(id: "c", key: "k", model: "m"), key: "k", created: false).kind == "stored")
    }

    @Test(arguments: [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "refusal"), ("pause_turn", "pause_turn")])
    func stopReasonsMapToFinishReasons(stop: String, finish: String) {
        #expect(AnthropicResponses.finishReason(stop) == finish)
    }

    func events(_ text: String) -> [ServerSentEventParser.Event] {
        var parser = ServerSentEventParser()
        return parser.feed(Array(text.utf8)) + parser.finish()
    }

    @Test func theStreamAssemblerFollowsNamedEventsAndIgnoresTheRest() throws {
        let stream = """
            event: message_start
            data: {"type":"message_start","message":{"model":"claude-y","usage":{"input_tokens":7,"cache_read_input_tokens":1000,"output_tokens":1}}}

            event: ping
            data: {"type":"ping"}

            event: brand_new_event
            data: {"type":"brand_new_event"}

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":9}}

            event: message_stop
            data: {"type":"message_stop"}


            """
        var assembler = AnthropicResponses.StreamAssembler(requestedModel: "m")
        var deltas: [String] = []
        for event in events(stream) {
            if let delta = try assembler.take(event, provider: "anthropic", text: ServerText(key: nil)) { deltas.append(delta) }
        }
        #expect(deltas == ["Hel", "lo"])
        #expect(assembler.finished)
        #expect(assembler.response == GenerationResponse(
            text: "Hello", model: "claude-y", finishReason: "length", usage: Usage(promptTokens: 1007, completionTokens: 9, cachedTokens: 1000)))
    }

    @Test func anErrorEventEndsTheStreamAsARetryableError() throws {
        var assembler = AnthropicResponses.StreamAssembler(requestedModel: "m")
        let overloaded = events("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded for sk-ant-secret-key-77\"}}\n\n")
        let error = #expect(throws: APIError.self) { try assembler.take(overloaded[0], provider: "anthropic", text: ServerText(key: errors.configuration.apiKey)) }
        #expect(error?.retryable == true && error?.code == "overloaded_error")
        #expect(error?.message.contains("sk-ant-secret-key-77") == false)
        let invalid = events("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}\n\n")
        #expect(throws: APIError.self) { try assembler.take(invalid[0], provider: "anthropic", text: ServerText(key: nil)) }
        let malformed = events("event: content_block_delta\ndata: {\"type\":\"content_blo\n\n")
        let broken = #expect(throws: APIError.self) { try assembler.take(malformed[0], provider: "anthropic", text: ServerText(key: nil)) }
        #expect(broken?.retryable == true && broken?.code == "stream_malformed")
    }

    @Test func statusesMapToKindsAndRetryability() {
        func mapped(_ status: Int, _ body: String, _ headers: [String: String] = [:]) -> APIError {
            errors.error(status: status, headers: headers, body: Data(body.utf8), endpoint: "https://api.anthropic.com/v1/messages")
        }
        let envelope = { (type: String, message: String) in #"{"type":"error","error":{"type":"\#(type)","message":"\#(message)"},"request_id":"req_1"}"# }
        let auth = mapped(401, envelope("authentication_error", "invalid x-api-key sk-ant-secret-key-77"))
        #expect(!auth.retryable && auth.message.contains("$MY_ANTHROPIC_KEY") && auth.message.contains("--api-key-env"))
        #expect(!auth.message.contains("sk-ant-secret-key-77") && auth.code == "authentication_error")
        #expect(!mapped(403, envelope("permission_error", "no")).retryable)
        #expect(!mapped(404, envelope("not_found_error", "model: x")).retryable)
        let tooLarge = mapped(413, "<html><body>413 Request Entity Too Large</body></html>")
        #expect(!tooLarge.retryable && tooLarge.message.contains("Files API") && tooLarge.code == "request_too_large")
        let limited = mapped(429, envelope("rate_limit_error", "slow down"), ["retry-after": "7"])
        #expect(limited.kind == .rateLimited && limited.retryable && limited.retryAfter == .seconds(7))
        let overloaded = mapped(529, envelope("overloaded_error", "Overloaded"))
        #expect(overloaded.kind == .providerError && overloaded.retryable && overloaded.code == "overloaded_error")
        #expect(mapped(500, envelope("api_error", "boom")).retryable)
        #expect(mapped(503, "").retryable)
        #expect(!mapped(400, envelope("invalid_request_error", "max_tokens: Field required")).retryable)
        #expect(mapped(400, envelope("invalid_request_error", "x")).message.contains("(request req_1)"))
    }

    @Test func theKeyIsRedactedBeforeServerTextIsCut() {
        // The key straddles the cut: cutting first would leave a piece of it in the message.
        let padding = String(repeating: "x", count: AnthropicErrorMapping.maxServerText - 10)
        let error = errors.error(status: 400, headers: [:], body: Data("\(padding)sk-ant-secret-key-77 and more".utf8), endpoint: "e")
        #expect(!error.message.contains("sk-ant-sec"))
        #expect(!error.message.contains("secret"))
    }

    @Test func optionsNeedAnOriginAndAKeyOffThisMachine() throws {
        let noKey = #expect(throws: APIError.self) { try AnthropicConfiguration(options: ProviderOptions(environment: [:])) }
        #expect(noKey?.message.contains("$ANTHROPIC_API_KEY") == true)
        let withV1 = #expect(throws: APIError.self) {
            try AnthropicConfiguration(options: ProviderOptions(baseURL: "http://127.0.0.1:9/v1", environment: [:]))
        }
        #expect(withV1?.message.contains("drop the /v1") == true)
        let custom = try AnthropicConfiguration(options: ProviderOptions(apiKeyEnvironmentVariable: "OTHER", environment: ["OTHER": "k-123456"]))
        #expect(custom.apiKey == APIKey("k-123456") && custom.apiKeyVariable == "OTHER")
        #expect(custom.endpoint("messages").absoluteString == "https://api.anthropic.com/v1/messages")
        let prefixed = try AnthropicConfiguration(options: ProviderOptions(baseURL: "http://127.0.0.1:8000/anthropic/", environment: [:]))
        #expect(prefixed.endpoint("messages/count_tokens").absoluteString == "http://127.0.0.1:8000/anthropic/v1/messages/count_tokens")
        let declared = try AnthropicConfiguration(options: ProviderOptions(baseURL: "http://127.0.0.1:9", environment: [:], capabilities: [.generation, .batch]))
        #expect(declared.capabilities == [.generation, .batch])
    }

    @Test func probingSeesExactlyTheDeclaredCapabilities() {
        #expect(ProviderCapability.probe(AnthropicProvider.make(configuration)) == [.generation, .uploads, .caching, .streaming, .tokenCounting, .batch])
        let mock = AnthropicProvider.make(AnthropicConfiguration(capabilities: [.streaming]))
        #expect(ProviderCapability.probe(mock) == [.generation, .streaming])
        let counting = AnthropicProvider.make(AnthropicConfiguration(capabilities: [.tokenCounting, .caching]))
        #expect(ProviderCapability.probe(counting) == [.generation, .caching, .tokenCounting])
        #expect(!"\(configuration)".contains("sk-ant-secret-key-77"))
    }
}
