import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import Testing

/// Tools in each adapter's own shape (`Design/tool-calls.md`): definitions, `tool_choice`, an
/// assistant turn's calls and the tool results; `provider_options` cannot give the tools a
/// second time; and each adapter's answers (whole and streamed) decoded to `ToolCall`s.
@Suite struct ToolRequestTests {
    static let weather = ToolDefinition(
        name: "get_weather", description: "Weather", parameters: ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]])
    static let call = ToolCall(id: "call_1", name: "get_weather", arguments: ["city": "Paris"])

    static func request(choice: ToolChoice? = .named("get_weather"), options: JSONObject = [:]) -> GenerationRequest {
        var config = GenerationConfig(providerOptions: options)
        config.tools = [weather]
        config.toolChoice = choice
        return GenerationRequest(
            model: "m",
            parts: [
                .history([HistoryTurn(question: "Weather?", answer: "", toolCalls: [call])]),
                .toolResult(ToolResult(id: "call_1", name: "get_weather", content: ["temp": 21])),
                .toolResult(ToolResult(id: "call_2", name: "get_weather", content: "down", isError: true)),
                .text("And tomorrow?"),
            ],
            config: config)
    }

    static let openAI = ChatRequestBuilder(configuration: OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:1/v1")!), providerName: "openai")
    static let anthropic = AnthropicRequestBuilder(configuration: AnthropicConfiguration(apiKey: APIKey("sk-ant-test"), apiKeyVariable: "K"), providerName: "anthropic")
    static let gemini = GeminiRequestBuilder(providerName: "gemini")

    @Test func openAITakesFunctionsToolMessagesAndANamedChoice() throws {
        let body = try Self.openAI.body(for: Self.request(), stream: false).objectValue ?? [:]
        #expect(JSONSerializer.serialize(body["tools"] ?? .null)
            == #"[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]"#)
        #expect(JSONSerializer.serialize(body["tool_choice"] ?? .null) == #"{"type":"function","function":{"name":"get_weather"}}"#)
        let messages = try #require(body["messages"]?.arrayValue).map(JSONSerializer.serialize)
        #expect(messages == [
            #"{"role":"user","content":"Weather?"}"#,
            #"{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}"#,
            #"{"role":"tool","tool_call_id":"call_1","content":"{\"temp\":21}"}"#,
            #"{"role":"tool","tool_call_id":"call_2","content":"down"}"#,
            #"{"role":"user","content":"And tomorrow?"}"#,
        ])
        for (choice, wire) in [(ToolChoice.auto, #""auto""#), (.none, #""none""#), (.required, #""required""#)] {
            let b = try Self.openAI.body(for: Self.request(choice: choice), stream: false).objectValue
            #expect(JSONSerializer.serialize(b?["tool_choice"] ?? .null) == wire)
        }
        #expect(throws: APIError.self) { try Self.openAI.body(for: Self.request(options: ["tools": []]), stream: false) }
    }

    @Test func anthropicTakesInputSchemasToolUseAndToolResultBlocks() throws {
        let body = try Self.anthropic.body(for: Self.request(), purpose: .generate(stream: false)).objectValue ?? [:]
        #expect(JSONSerializer.serialize(body["tools"] ?? .null)
            == #"[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]"#)
        #expect(JSONSerializer.serialize(body["tool_choice"] ?? .null) == #"{"type":"tool","name":"get_weather"}"#)
        let messages = try #require(body["messages"]?.arrayValue).map(JSONSerializer.serialize)
        #expect(messages == [
            // A single text part goes as a plain string (servers that accept only strings work).
            #"{"role":"user","content":"Weather?"}"#,
            #"{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}}]}"#,
            #"{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"{\"temp\":21}"},{"type":"tool_result","tool_use_id":"call_2","content":"down","is_error":true},{"type":"text","text":"And tomorrow?"}]}"#,
        ])
        for (choice, wire) in [(ToolChoice.auto, #"{"type":"auto"}"#), (.none, #"{"type":"none"}"#), (.required, #"{"type":"any"}"#)] {
            let b = try Self.anthropic.body(for: Self.request(choice: choice), purpose: .generate(stream: false)).objectValue
            #expect(JSONSerializer.serialize(b?["tool_choice"] ?? .null) == wire)
        }
        // count_tokens counts the tools too.
        #expect(try Self.anthropic.body(for: Self.request(), purpose: .countTokens).objectValue?["tools"] != nil)
        #expect(throws: APIError.self) { try Self.anthropic.body(for: Self.request(options: ["tool_choice": ["type": "auto"]]), purpose: .generate(stream: false)) }
    }

    @Test func geminiTakesDeclarationsFunctionCallsAndResponses() throws {
        let body = try Self.gemini.body(for: Self.request()).objectValue ?? [:]
        #expect(JSONSerializer.serialize(body["tools"] ?? .null)
            == #"[{"functionDeclarations":[{"name":"get_weather","description":"Weather","parametersJsonSchema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}]"#)
        #expect(JSONSerializer.serialize(body["toolConfig"] ?? .null) == #"{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["get_weather"]}}"#)
        let contents = try #require(body["contents"]?.arrayValue).map(JSONSerializer.serialize)
        #expect(contents == [
            #"{"role":"user","parts":[{"text":"Weather?"}]}"#,
            #"{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"},"id":"call_1"}}]}"#,
            #"{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"temp":21},"id":"call_1"}},{"functionResponse":{"name":"get_weather","response":{"error":"down"},"id":"call_2"}},{"text":"And tomorrow?"}]}"#,
        ])
        for (choice, wire) in [(ToolChoice.auto, "AUTO"), (.none, "NONE"), (.required, "ANY")] {
            let b = try Self.gemini.body(for: Self.request(choice: choice)).objectValue
            #expect(b?["toolConfig"]?.objectValue?["functionCallingConfig"]?.objectValue?["mode"]?.stringValue == wire)
        }
        // An id the adapter made up (Gemini sent none) is not sent back.
        var request = Self.request()
        request.parts[0] = .history([HistoryTurn(question: "Weather?", answer: "", toolCalls: [ToolCall(id: "gemini-call-0", name: "get_weather", arguments: [:])])])
        #expect(!JSONSerializer.serialize(try Self.gemini.body(for: request)).contains("gemini-call-0"))
        #expect(throws: APIError.self) { try Self.gemini.body(for: Self.request(options: ["tool_config": [:]])) }
        // Gemini keeps tools in a cache, which holds the shared parts only: refused before sending.
        var cached = Self.request()
        cached.cache = CacheReference(id: "cachedContents/x", key: "k", model: "m", tokenCount: 1, createdAt: Date())
        #expect(throws: APIError.self) { try Self.gemini.body(for: cached) }
    }

    @Test func openAIAnswersAndStreamedPiecesBecomeCalls() throws {
        let whole = #"{"model":"m","choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},"finish_reason":"tool_calls"}]}"#
        let response = try OpenAIResponses.completion(Data(whole.utf8), requestedModel: "m", provider: "openai", text: ServerText(key: nil))
        #expect(response.toolCalls == [ToolCall(id: "call_9", name: "get_weather", arguments: ["city": "Oslo"])] && response.finishReason == "tool_calls" && response.text == "")
        var assembler = OpenAIResponses.StreamAssembler(requestedModel: "m")
        let chunks = [
            #"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
            #"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]}}]}"#,
            #"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Rome\"}"}}]}}]}"#,
            #"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"get_time","arguments":"{}"}}]}}]}"#,
            #"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]
        var announced: [[String]] = []
        for chunk in chunks {
            _ = try assembler.take(try JSONParser.parse(chunk), provider: "openai", serverText: ServerText(key: nil))
            announced.append(assembler.completedToolCalls().map(\.id))
        }
        // Each call is whole when the next begins, the last when the stream says why it finished.
        #expect(announced == [[], [], [], ["call_a"], ["call_b"]])
        #expect(assembler.response.toolCalls == [
            ToolCall(id: "call_a", name: "get_weather", arguments: ["city": "Rome"]), ToolCall(id: "call_b", name: "get_time", arguments: [:]),
        ])
    }

    @Test func anthropicStreamedInputJSONIsJoinedAtTheBlocksEnd() throws {
        var assembler = AnthropicResponses.StreamAssembler(requestedModel: "m")
        let events: [(String, String)] = [
            ("message_start", #"{"type":"message_start","message":{"model":"m","usage":{"input_tokens":5}}}"#),
            ("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            ("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}"#),
            ("content_block_stop", #"{"type":"content_block_stop","index":0}"#),
            ("content_block_start", #"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#),
            ("content_block_delta", #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Li"}}"#),
            ("content_block_delta", #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ma\"}"}}"#),
            ("content_block_stop", #"{"type":"content_block_stop","index":1}"#),
            ("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#),
            ("message_stop", #"{"type":"message_stop"}"#),
        ]
        var announcedAt: [Int] = []
        for (i, (name, data)) in events.enumerated() {
            _ = try assembler.take(ServerSentEventParser.Event(name: name, data: data), provider: "anthropic", text: ServerText(key: nil))
            if !assembler.completedToolCalls().isEmpty { announcedAt.append(i) }
        }
        #expect(announcedAt == [7])
        let response = assembler.response
        #expect(response.text == "Checking." && response.finishReason == "tool_calls")
        #expect(response.toolCalls == [ToolCall(id: "toolu_1", name: "get_weather", arguments: ["city": "Lima"])])
    }

    @Test func geminiFunctionCallsAreCallsAndStopIsToolCalls() throws {
        var assembler = GeminiResponses.Assembler(requestedModel: "m", provider: "gemini")
        _ = try assembler.take(try JSONParser.parse(
            #"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Kyiv"}}},{"functionCall":{"id":"fc-7","name":"get_time","args":{}}}]},"finishReason":"STOP"}]}"#))
        #expect(assembler.completedToolCalls().count == 2 && assembler.completedToolCalls().isEmpty)
        let response = try assembler.response(endpoint: "test")
        #expect(response.finishReason == "tool_calls" && response.text == "")
        #expect(response.toolCalls == [
            ToolCall(id: "gemini-call-0", name: "get_weather", arguments: ["city": "Kyiv"]), ToolCall(id: "fc-7", name: "get_time", arguments: [:]),
        ])
    }
}
