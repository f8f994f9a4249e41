import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import Testing

/// A repaired request (`RepairUnit.repaired`) in each adapter's own shape: the prompt as the
/// user's turn, the rejected answer as the assistant's (model's) turn alone, then the correction
/// as the user's; `max_repairs` is the engine's and never sent.
@Suite struct RepairRequestTests {
    static let violation = JSONSchema.Violation(path: "$.age", message: "expected an integer, found a string")
    static var request: GenerationRequest { request(["type": "json_object"]) }
    static func request(_ format: JSONValue) -> GenerationRequest {
        var config = GenerationConfig(responseFormat: format)
        config.maxRepairs = 2
        let first = GenerationRequest(model: "m", parts: [.text("Who?")], config: config)
        return RepairUnit.repaired(first, answer: #"{"age":"36"}"#, violation: violation)
    }
    static let correction = RepairUnit.correction(violation)

    @Test func openAIGetsUserAssistantUser() throws {
        let builder = ChatRequestBuilder(configuration: OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:1/v1")!), providerName: "openai")
        let body = JSONSerializer.serialize(try builder.body(for: Self.request, stream: false))
        let expected = #"{"model":"m","messages":[{"role":"user","content":"Who?"},{"role":"assistant","content":"{\"age\":\"36\"}"},{"role":"user","content":"# + JSONSerializer.serialize(.string(Self.correction)) + #"}],"response_format":{"type":"json_object"}}"#
        #expect(body == expected)
    }

    @Test func geminiGetsUserModelUser() throws {
        let body = try GeminiRequestBuilder(providerName: "gemini").body(for: Self.request)
        let contents = try #require(body.objectValue?["contents"]?.arrayValue)
        #expect(contents.map { $0.objectValue?["role"]?.stringValue } == ["user", "model", "user"])
        #expect(JSONSerializer.serialize(contents[1]) == #"{"role":"model","parts":[{"text":"{\"age\":\"36\"}"}]}"#)
        #expect(JSONSerializer.serialize(contents[2]).contains("at $.age, expected an integer"))
        #expect(!JSONSerializer.serialize(body).contains("max_repairs"))
    }

    @Test func anthropicGetsUserAssistantUser() throws {
        let configuration = AnthropicConfiguration(apiKey: APIKey("sk-ant-test"), apiKeyVariable: "K")
        let body = try AnthropicRequestBuilder(configuration: configuration, providerName: "anthropic").body(
            for: Self.request(["type": "json_schema", "json_schema": ["name": "p", "schema": ["type": "object"]]]), purpose: .generate(stream: false))
        let messages = try #require(body.objectValue?["messages"]?.arrayValue)
        #expect(messages.map { $0.objectValue?["role"]?.stringValue } == ["user", "assistant", "user"])
        #expect(JSONSerializer.serialize(messages[1]) == #"{"role":"assistant","content":"{\"age\":\"36\"}"}"#)
        #expect(!JSONSerializer.serialize(body).contains("max_repairs"))
    }
}
