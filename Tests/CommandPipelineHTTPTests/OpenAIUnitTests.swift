import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import Testing

@Suite struct ServerSentEventParserTests {
    let stream = ": comment\n\ndata: {\"a\":1}\r\n\r\nevent: ping\ndata: x\n\ndata: line one\ndata: line two\n\n\n\ndata: [DONE]\n\n"

    @Test(arguments: [1, 2, 3, 5, 8, 1000])
    func eventsSurviveAnySplitOfTheBytes(chunk: Int) {
        var parser = ServerSentEventParser()
        var events: [ServerSentEventParser.Event] = []
        let bytes = Array(stream.utf8)
        for start in stride(from: 0, to: bytes.count, by: chunk) {
            events += parser.feed(bytes[start..<min(start + chunk, bytes.count)])
        }
        events += parser.finish()
        #expect(events.map(\.data) == ["{\"a\":1}", "x", "line one\nline two", "[DONE]"])
        #expect(events.map(\.name) == ["message", "ping", "message", "message"])
    }

    @Test func anEventWithoutItsBlankLineIsDispatchedAtTheEnd() {
        var parser = ServerSentEventParser()
        #expect(parser.feed(Array("data: last".utf8)).isEmpty)
        #expect(parser.finish().map(\.data) == ["last"])
    }
}

@Suite struct ChatRequestBuilderTests {
    func builder(_ capabilities: Set<ProviderCapability> = [.generation, .streaming]) -> ChatRequestBuilder {
        ChatRequestBuilder(configuration: OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:1/v1")!, capabilities: capabilities), providerName: "openai")
    }

    @Test func systemHistoryAndTextBecomeMessages() throws {
        let request = GenerationRequest(
            model: "m",
            parts: [.history([HistoryTurn(question: "Q1", answer: "A1")]), .text("Q2")],
            config: GenerationConfig(systemInstruction: "Be terse.", temperature: 0.5, maxTokens: 64, stop: ["END"], seed: 3,
                                     responseFormat: ["type": "json_object"], providerOptions: ["temperature": 0.1, "user": "u1"]))
        let body = try builder().body(for: request, stream: false)
        #expect(JSONSerializer.serialize(body) == #"{"model":"m","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"Q1"},{"role":"assistant","content":"A1"},{"role":"user","content":"Q2"}],"temperature":0.1,"max_tokens":64,"stop":"END","seed":3,"response_format":{"type":"json_object"},"user":"u1"}"#)
    }

    @Test func imagesAreDataURLsAndStreamingAsksForUsage() throws {
        let request = GenerationRequest(model: "m", parts: [.text("what is this?"), .inline(InlineData(mimeType: "image/png", data: Data([1, 2, 3])))])
        let body = try builder().body(for: request, stream: true)
        let text = JSONSerializer.serialize(body)
        #expect(text.contains(#"{"type":"image_url","image_url":{"url":"data:image/png;base64,AQID"}}"#))
        #expect(text.contains(#""stream":true,"stream_options":{"include_usage":true}"#))
    }

    @Test func filePartsNeedTheUploadsCapability() throws {
        let request = GenerationRequest(model: "m", parts: [.fileRef(FileReference(uri: "file-abc", mimeType: "application/pdf")), .text("sum up")])
        #expect(JSONSerializer.serialize(try builder([.generation, .uploads]).body(for: request, stream: false)).contains(#"{"type":"file","file":{"file_id":"file-abc"}}"#))
        do {
            _ = try builder().body(for: request, stream: false)
            Issue.record("a file part went to a server without uploads")
        } catch {
            #expect(error.kind == .capabilityMissing)
            #expect(error.message.contains("request part 0"))
        }
        let placeholder = GenerationRequest(model: "m", parts: [.filePlaceholder(FilePlaceholder(path: "a.pdf"))])
        #expect(throws: APIError.self) { try builder([.generation, .uploads]).body(for: placeholder, stream: false) }
    }
}

@Suite struct OpenAIErrorMappingTests {
    let mapping = OpenAIErrorMapping(
        configuration: OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:1/v1")!, apiKey: APIKey("sk-secret-123"), apiKeyVariable: "MY_KEY"),
        providerName: "openai")

    @Test(arguments: [
        (400, APIError.Kind.providerError, false), (401, .providerError, false), (403, .providerError, false), (404, .providerError, false),
        (408, .providerError, true), (409, .providerError, true), (422, .providerError, false), (429, .rateLimited, true),
        (500, .providerError, true), (502, .providerError, true), (503, .providerError, true), (529, .providerError, true),
    ])
    func statusesMapToKinds(status: Int, kind: APIError.Kind, retryable: Bool) {
        let error = mapping.error(status: status, headers: [:], body: Data(#"{"error":{"message":"nope"}}"#.utf8), endpoint: "E")
        #expect(error.kind == kind)
        #expect(error.retryable == retryable)
        #expect(error.message.hasPrefix("HTTP \(status) from E: nope"))
    }

    @Test func fastAPIDetailBodiesAreReadable() {
        let body = #"{"detail":[{"type":"literal_error","loc":["body","messages",0,"content"],"msg":"Input should be 'text'"}]}"#
        let error = mapping.error(status: 422, headers: [:], body: Data(body.utf8), endpoint: "E")
        #expect(error.message.contains("body.messages.0.content: Input should be 'text'"))
        #expect(mapping.error(status: 404, headers: [:], body: Data(#"{"detail":"Not Found"}"#.utf8), endpoint: "E").message.contains("Not Found"))
    }

    @Test func authenticationErrorsNameTheVariableAndNeverTheKey() {
        let error = mapping.error(status: 401, headers: [:], body: Data(#"{"error":{"message":"Incorrect API key provided: sk-secret-123"}}"#.utf8), endpoint: "E")
        #expect(error.message.contains("$MY_KEY"))
        #expect(!error.message.contains("sk-secret-123"))
        #expect("\(APIKey("sk-secret-123"))" == "<redacted>")
    }

    @Test func retryHintsAndOverrides() {
        #expect(mapping.error(status: 429, headers: ["retry-after": "2"], body: Data(), endpoint: "E").retryAfter == .seconds(2))
        let quota = mapping.error(status: 429, headers: [:], body: Data(#"{"error":{"message":"quota","code":"insufficient_quota"}}"#.utf8), endpoint: "E")
        #expect(quota.kind == .providerError && !quota.retryable)
        #expect(mapping.error(status: 500, headers: ["x-should-retry": "false"], body: Data(), endpoint: "E").retryable == false)
        #expect(mapping.error(status: 400, headers: ["x-should-retry": "true"], body: Data(), endpoint: "E").retryable == true)
    }
}

@Suite struct OpenAIConfigurationTests {
    @Test func aRemoteServerNeedsAKeyAndLoopbackDoesNot() throws {
        #expect(throws: APIError.self) { try OpenAIConfiguration(options: ProviderOptions(environment: [:])) }
        let remote = try OpenAIConfiguration(options: ProviderOptions(environment: ["OPENAI_API_KEY": "sk-x"]))
        #expect(remote.capabilities == [.generation, .uploads, .streaming, .batch])
        let local = try OpenAIConfiguration(options: ProviderOptions(baseURL: "http://localhost:8000/v1", environment: [:]))
        #expect(local.apiKey == nil)
        #expect(local.capabilities == [.generation, .streaming])
        #expect(throws: APIError.self) { try OpenAIConfiguration(options: ProviderOptions(baseURL: "ftp://x", environment: [:])) }
        #expect(throws: APIError.self) { try OpenAIConfiguration(options: ProviderOptions(baseURL: "http://127.0.0.1/v1", environment: [:], capabilities: [.caching])) }
    }

    @Test(arguments: [
        Set<ProviderCapability>([.generation]), [.generation, .uploads], [.generation, .streaming], [.generation, .uploads, .streaming],
        [.generation, .batch],
    ])
    func probingSeesExactlyTheDeclaredCapabilities(declared: Set<ProviderCapability>) {
        let provider = OpenAIProvider.make(OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:1/v1")!, capabilities: declared))
        #expect(ProviderCapability.probe(provider) == declared)
    }
}
