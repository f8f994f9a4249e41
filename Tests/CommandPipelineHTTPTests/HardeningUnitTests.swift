import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// Redaction, URL display, retry hints, usage numbers, the endpoint rules and reserved
/// provider options, without a server.
@Suite struct RedactionTests {
    static let key = "sk-live-0123456789abcdefXYZ"

    static func leaks(_ text: String, _ key: String = key) -> Bool {
        let chars = Array(key)
        return (0...(chars.count - 8)).contains { text.contains(String(chars[$0..<$0 + 8])) }
    }

    @Test(arguments: Array(-30...30))
    func aKeyStraddlingThePreviewCutNeverLeavesAPiece(shift: Int) {
        // The key starts `shift` characters before the cut (negative: after it).
        let body = String(repeating: "x", count: ServerText.previewLength - shift) + Self.key + " and more text"
        let text = ServerText(key: APIKey(Self.key))
        #expect(!Self.leaks(text.preview(body)), "string, shift \(shift)")
        #expect(!Self.leaks(text.preview(Data(body.utf8))), "bytes, shift \(shift)")
        #expect(text.preview(body).count <= ServerText.previewLength + 1)
    }

    @Test func everySpellingOfTheKeyIsRedacted() {
        let key = APIKey("sk-abc/def+ghi_123")
        let full = "sk-abc/def+ghi_123".utf8.map { String(format: "%%%02X", $0) }.joined()
        for echo in [
            "Bearer sk-abc/def+ghi_123", "Bearer%20sk-abc%2Fdef%2Bghi_123", "sk-abc%2fdef%2bghi_123", full, full.lowercased(),
            "SK-ABC/DEF+GHI_123", #"{"k":"sk-abc\/def+ghi_123"}"#,
        ] {
            let redacted = key.redact("saw: " + echo)
            #expect(redacted.contains("<redacted>"), "\(echo) → \(redacted)")
            #expect(!Self.leaks(redacted, "sk-abc/def+ghi_123") && !redacted.lowercased().contains("def+ghi"), "\(echo) → \(redacted)")
        }
    }

    /// Issue 29 item 2: a placeholder key (`EMPTY`, `ollama`, `x`) never changes an answer, an
    /// error or a URL at the adapter's boundary; a real-length key still goes everywhere.
    @Test func placeholderKeysNeverAlterAnswers() {
        for placeholder in ["EMPTY", "ollama", "x"] {
            let text = ServerText(key: APIKey(placeholder))
            let answer = GenerationResponse(text: "Is the glass empty? Ask Ollama. EMPTY x", model: "ollama/x", finishReason: "stop", usage: Usage())
            #expect(text.scrub(answer) == answer, "\(placeholder)")
            let error = APIError(.providerError, "GET http://localhost:11434/v1/x failed: working on EMPTY", code: "x")
            #expect((text.scrub(error) as? APIError) == error, "\(placeholder)")
            #expect(text.preview("working x") == "working x")
        }
        let real = ServerText(key: APIKey(Self.key))
        let answer = real.scrub(GenerationResponse(text: "echo \(Self.key) and EMPTY", model: "m \(Self.key)", finishReason: "stop", usage: Usage()))
        #expect(answer.text == "echo <redacted> and EMPTY" && !Self.leaks(answer.model))
    }

    @Test func theKeyNeverPrints() {
        let key = APIKey(Self.key)
        for text in ["\(key)", String(reflecting: key), "\(OpenAIConfiguration(apiKey: key))", String(reflecting: OpenAIConfiguration(apiKey: key))] {
            #expect(!Self.leaks(text), "\(text)")
        }
    }

    @Test(arguments: [
        ("http://user:pass@host:8/v1", "http://host:8/v1"), ("https://u@h/x?y=1", "https://h/x?y=1"), ("http://h/p@q", "http://h/p@q"),
        ("http://a:b@c@d/e", "http://d/e"), ("not a url", "not a url"), ("http://h:1/v1", "http://h:1/v1"),
    ])
    func urlsAreShownWithoutUserinfo(url: String, shown: String) {
        #expect(DisplayURL.withoutUserinfo(url) == shown)
    }
}

@Suite struct ServerNumberTests {
    @Test func usageNumbersArePinnedWhereTheyEnter() throws {
        let limit = OpenAIResponses.maxReportedTokens
        #expect(limit == 1 << 53)
        let cases: [(String, Usage)] = [
            (#"{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807}"#, Usage(promptTokens: limit, completionTokens: limit, totalTokens: limit)),
            (#"{"prompt_tokens":-5,"completion_tokens":-9223372036854775808,"total_tokens":-7}"#, Usage(promptTokens: 0, completionTokens: 0, totalTokens: 0)),
            (#"{"prompt_tokens":1e30,"completion_tokens":2.5,"total_tokens":1e300}"#, Usage(promptTokens: limit, completionTokens: 2, totalTokens: limit)),
            // No count in it: unknown, not zero (ADR 0013).
            (#"{"prompt_tokens":"12","completion_tokens":null,"prompt_tokens_details":{"cached_tokens":-1}}"#, .unreported),
            (#"{"prompt_tokens":0,"completion_tokens":null}"#, Usage()),
            (#"{"prompt_tokens":3,"completion_tokens":4}"#, Usage(promptTokens: 3, completionTokens: 4, totalTokens: 7)),
        ]
        for (json, expected) in cases {
            #expect(OpenAIResponses.usage(try JSONParser.parse(Array(json.utf8))) == expected, "\(json)")
        }
    }
}

@Suite struct EndpointRuleTests {
    /// Every HTTP provider meets the endpoint rules (`EndpointRules`).
    static let providers = ["openai", "gemini", "anthropic"]

    func options(_ url: String, key: String? = "sk-x", allowInsecure: Bool = false) -> ProviderOptions {
        let keys = key.map { ["OPENAI_API_KEY": $0, "GEMINI_API_KEY": $0, "ANTHROPIC_API_KEY": $0] } ?? [:]
        return ProviderOptions(baseURL: url, environment: keys, allowInsecureHTTP: allowInsecure)
    }

    func make(_ provider: String, _ options: ProviderOptions) throws(APIError) {
        _ = try ProviderRegistry.withHTTPProviders.make(provider, options: options).get()
    }

    @Test(arguments: providers)
    func userinfoInTheBaseURLIsRefusedWithoutRepeatingIt(provider: String) {
        for url in ["http://user:hunter2@127.0.0.1:8000/api", "https://user:hunter2@api.example.com/api", "http://hunter2@localhost/api"] {
            do {
                try make(provider, options(url))
                Issue.record("\(provider): \(url) was accepted")
            } catch {
                #expect(error.kind == .invalidCommand)
                #expect(error.message.contains("user:password@"))
                #expect(!error.message.contains("hunter2"), "\(error.message)")
            }
        }
        let bad = #expect(throws: APIError.self) { try make(provider, options("ftp://u:hunter2@h/x")) }
        #expect(bad?.message.contains("hunter2") == false)
    }

    @Test(arguments: providers)
    func aKeyGoesOverPlainHTTPOnlyToThisMachineUnlessAllowed(provider: String) throws {
        for url in ["http://127.0.0.1:8000/api", "http://127.1.2.3/api", "http://localhost:1/api", "http://[::1]:8000/api", "https://api.example.com/api"] {
            #expect(throws: Never.self, "\(provider): \(url)") { try make(provider, options(url)) }
        }
        for url in ["http://api.example.com/api", "http://10.0.0.5:8000/api", "http://127.0.0.1.example.com/api", "http://127.evil.example/api", "HTTP://192.0.2.1/api"] {
            let error = #expect(throws: APIError.self, "\(provider): \(url)") { try make(provider, options(url)) }
            #expect(error?.message.contains("--allow-insecure-http") == true, "\(url): \(String(describing: error))")
            #expect(throws: Never.self, "\(url)") { try make(provider, options(url, allowInsecure: true)) }
        }
    }

    @Test func aNameThatStartsWith127IsNotLoopback() {
        #expect(throws: APIError.self) { try OpenAIConfiguration(options: options("http://127.evil.example/v1", key: nil)) }
        #expect(!EndpointRules.isLoopbackHost("127.0.0.1.nip.io"))
        #expect(!EndpointRules.isLoopbackHost("127.0.0"))
        #expect(!EndpointRules.isLoopbackHost("127.0.0.256"))
        #expect(EndpointRules.isLoopbackHost("127.255.0.1"))
        #expect(EndpointRules.isLoopbackHost("[::1]"))
    }

    @Test func aConfigurationBuiltInCodeMeetsTheSameRules() async throws {
        for url in ["http://user:hunter2@127.0.0.1:9/v1", "http://192.0.2.1:9/v1"] {
            let provider = OpenAIProvider.make(OpenAIConfiguration(baseURL: URL(string: url)!, apiKey: APIKey("sk-x")))
            do {
                _ = try await provider.generate(GenerationRequest(model: "m", parts: [.text("x")]))
                Issue.record("\(url): sent")
            } catch let error as APIError {
                #expect(error.kind == .invalidCommand, "\(url): \(error)")
                #expect(!error.message.contains("hunter2"))
            }
        }
    }
}

@Suite struct ReservedProviderOptionTests {
    let builder = ChatRequestBuilder(configuration: OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:1/v1")!), providerName: "openai")

    @Test(arguments: ["model", "messages", "stream", "stream_options", "n"])
    func reservedKeysAreRefusedWithTheirPath(key: String) {
        let request = GenerationRequest(model: "m", parts: [.text("x")], config: GenerationConfig(providerOptions: [key: true]))
        for stream in [false, true] {
            let error = #expect(throws: APIError.self) { try builder.body(for: request, stream: stream) }
            #expect(error?.kind == .invalidCommand)
            #expect(error?.path == "config.provider_options.\(key)")
            #expect(error?.message.contains("provider_options") == true)
        }
    }

    @Test func otherKeysStillPassThrough() throws {
        let request = GenerationRequest(model: "m", parts: [.text("x")], config: GenerationConfig(providerOptions: ["user": "u", "max_completion_tokens": 5]))
        let body = JSONSerializer.serialize(try builder.body(for: request, stream: false))
        #expect(body.contains(#""user":"u","max_completion_tokens":5"#))
    }
}

/// Request bodies on disk hold a private file's bytes: owner-only, exclusive, removed on failure.
@Suite struct PrivateBodyFileTests {
    @Test func aBodyFileIsReadableByItsOwnerOnlyAndHoldsTheFile() async throws {
        let dir = try temporaryDirectory(files: ["secret.txt": "private bytes"])
        let source = try OpenedFile.open(dir.appendingPathComponent("secret.txt").path).get()
        let body = try await PrivateTemporaryFile.write(label: "test") { file in
            try file.append(Array("head:".utf8))
            try await file.append(source)
        }
        defer { try? FileManager.default.removeItem(at: body.url) }
        let attributes = try FileManager.default.attributesOfItem(atPath: body.url.path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try String(contentsOf: body.url, encoding: .utf8) == "head:private bytes")
        #expect(body.size == 18)
    }

    @Test func aBodyThatFailsHalfWayLeavesNoFileBehind() async throws {
        struct Stop: Error {}
        let created = LockedURL()
        await #expect(throws: Stop.self) {
            _ = try await PrivateTemporaryFile.write(label: "test") { file in
                created.set(file.url)
                try file.append(Array("partial".utf8))
                throw Stop()
            }
        }
        let url = try #require(created.get())
        #expect(!FileManager.default.fileExists(atPath: url.path))
    }
}

private final class LockedURL: @unchecked Sendable {
    private let lock = NSLock()
    private var url: URL?
    func set(_ u: URL) { lock.withLock { url = u } }
    func get() -> URL? { lock.withLock { url } }
}

/// Every adapter maps redirects and the client's transport failures the same way.
@Suite struct TransportErrorsEveryAdapterTests {
    static let key = "sk-every-adapter-0123456789"

    /// status, headers → error; transport error → error; for each adapter's mapping.
    static let adapters: [(String, @Sendable (Int, [String: String]) -> APIError, @Sendable (any Error) -> APIError)] = {
        let base = URL(string: "http://127.0.0.1:9")!
        let openai = OpenAIErrorMapping(configuration: OpenAIConfiguration(baseURL: base, apiKey: APIKey(key)), providerName: "openai")
        let gemini = GeminiErrorMapping(configuration: GeminiConfiguration(baseURL: base, apiKey: APIKey(key)), providerName: "gemini")
        let anthropic = AnthropicErrorMapping(configuration: AnthropicConfiguration(baseURL: base, apiKey: APIKey(key)), providerName: "anthropic")
        return [
            ("openai", { openai.error(status: $0, headers: $1, body: Data(), endpoint: "http://127.0.0.1:9/x") }, { openai.error(transport: $0, endpoint: "http://127.0.0.1:9/x") }),
            ("gemini", { gemini.error(status: $0, headers: $1, body: Data(), endpoint: "http://127.0.0.1:9/x") }, { gemini.error(transport: $0, endpoint: "http://127.0.0.1:9/x") }),
            ("anthropic", { anthropic.error(status: $0, headers: $1, body: Data(), endpoint: "http://127.0.0.1:9/x") }, { anthropic.error(transport: $0, endpoint: "http://127.0.0.1:9/x") }),
        ]
    }()

    @Test(arguments: [0, 1, 2])
    func aRedirectIsAnErrorThatNamesNeitherKeyNorPassword(adapter: Int) {
        let (name, status, _) = Self.adapters[adapter]
        for code in [301, 302, 303, 307, 308] {
            let error = status(code, ["location": "http://user:hunter2@evil.example:9/v1?key=\(Self.key)"])
            #expect(error.code == "redirect" && !error.retryable, "\(name) \(code): \(error)")
            #expect(!error.message.contains(Self.key) && !error.message.contains("hunter2"), "\(name): \(error.message)")
            #expect(error.message.contains("evil.example"), "the user is told where it points")
        }
    }

    @Test(arguments: [0, 1, 2])
    func theClientsLimitsMapAlike(adapter: Int) {
        let (name, _, transport) = Self.adapters[adapter]
        let lost = transport(HTTPClient.Failure.connectionLost(receivedBytes: 10, underlying: URLError(.unknown)))
        #expect(lost.code == "connection_lost" && lost.retryable, "\(name): \(lost)")
        let slow = transport(HTTPClient.Failure.deadlineExceeded(seconds: 600))
        #expect(slow.kind == .timeout && slow.retryable, "\(name): \(slow)")
        let big = transport(HTTPClient.Failure.bodyTooLarge(limit: 64, declared: 1 << 40))
        #expect(big.code == "response_too_large" && !big.retryable, "\(name): \(big)")
    }
}
