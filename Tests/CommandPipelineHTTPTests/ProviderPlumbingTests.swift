import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import Testing

/// The one provider plumbing every adapter, batch client and the webhook sink share
/// (`Transport/RetryHint.swift`, `Transport/ProviderExchange.swift`, `EndpointRules`): every
/// form of retry hint, the caps, redaction before the cut. The adapters' own tests no longer
/// repeat these.
@Suite struct RetryHintTests {
    let now = Date(timeIntervalSince1970: 1_000_000)  // Mon, 12 Jan 1970 13:46:40 GMT

    @Test func secondsAndMilliseconds() {
        #expect(RetryHint.parse(["retry-after": "2"]) == .seconds(2))
        #expect(RetryHint.parse(["retry-after": " 1.5 "]) == .milliseconds(1500))
        #expect(RetryHint.parse(["retry-after": "0"]) == .zero)
        #expect(RetryHint.parse(["retry-after-ms": "1500"]) == .milliseconds(1500))
        #expect(RetryHint.parse(["retry-after-ms": "0.5"]) == .milliseconds(1))
        #expect(RetryHint.parse([:]) == nil)
    }

    @Test func httpDatesInAllThreeForms() {
        // IMF-fixdate, RFC 850 and asctime (RFC 9110 §5.6.7): 30 s after `now`.
        for date in ["Mon, 12 Jan 1970 13:47:10 GMT", "Monday, 12-Jan-70 13:47:10 GMT", "Mon Jan 12 13:47:10 1970", "Mon Jan  2 00:00:00 1970"] {
            let hint = RetryHint.parse(["retry-after": date], now: now)
            #expect(hint != nil, "\(date)")
            if date.contains("12") { #expect(hint == .seconds(30), "\(date)") }
        }
        // A date in the past: retry now; one far ahead: capped.
        #expect(RetryHint.parse(["retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"], now: now) == .zero)
        #expect(RetryHint.parse(["retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"], now: now) == RetryHint.cap)
    }

    @Test func gatewayHeadersComeAfterTheServersOwn() {
        #expect(RetryHint.parse(["llm_provider-retry-after": "7"]) == .seconds(7))
        #expect(RetryHint.parse(["llm_provider-retry-after-ms": "250"]) == .milliseconds(250))
        #expect(RetryHint.parse(["llm_provider-retry-after": "Mon, 12 Jan 1970 13:46:50 GMT"], now: now) == .seconds(10))
        #expect(RetryHint.parse(["retry-after": "3", "llm_provider-retry-after": "7"]) == .seconds(3))
        #expect(RetryHint.parse(["retry-after-ms": "1500", "retry-after": "9"]) == .milliseconds(1500))
        // An unusable value gives way to the next header.
        #expect(RetryHint.parse(["retry-after-ms": "inf", "retry-after": "2"]) == .seconds(2))
        #expect(RetryHint.parse(["retry-after": "soon", "llm_provider-retry-after-ms": "40"]) == .milliseconds(40))
    }

    @Test(arguments: [
        "1e20", "inf", "-inf", "nan", "-1", "-5", "0x10", "1e-320", "", " ", "1.", ".5", "+3", "soon", "1,5", "٣",
        "99999999999999999999999999999999999999", String(repeating: "9", count: 400), "Fri, 31 Dec 9999 23:59:59 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT garbage",
    ])
    func everyValueStaysInRangeOrIsRefused(value: String) {
        for (name, _) in RetryHint.headers {
            if let hint = RetryHint.parse([name: value], now: now) {
                #expect(hint >= .zero && hint <= RetryHint.cap, "\(name): \(value) → \(hint)")
            }
        }
        for bad in ["1e20", "inf", "nan", "-1", "0x10", "+3", "1.", ".5", "soon", "٣"] where value == bad {
            #expect(RetryHint.parse(["retry-after": value]) == nil, "\(value)")
        }
    }

    @Test func hugeValuesAreCappedOnce() {
        #expect(RetryHint.parse(["retry-after": "99999999999"]) == RetryHint.cap)
        #expect(RetryHint.parse(["retry-after-ms": "99999999999999999999"]) == RetryHint.cap)
        #expect(RetryHint.parse(["llm_provider-retry-after": "1e300"]) == nil)
        #expect(RetryHint.capped(seconds: .infinity) == nil && RetryHint.capped(seconds: -1) == nil && RetryHint.capped(seconds: .nan) == nil)
        #expect(RetryHint.capped(seconds: 1e300) == RetryHint.cap)
    }

    @Test func appliedToAMappedError() {
        let retryable = APIError(.providerError, "x", retryable: true)
        let final = APIError(.providerError, "x", retryable: false)
        #expect(RetryHint.apply(to: retryable, status: 503, headers: ["retry-after": "4"]).retryAfter == .seconds(4))
        #expect(RetryHint.apply(to: final, status: 400, headers: ["retry-after": "4"]).retryAfter == nil)
        // x-should-retry overrides either way; a hint the mapping read from the body stays.
        #expect(RetryHint.apply(to: final, status: 400, headers: ["x-should-retry": "true"]).retryable)
        #expect(!RetryHint.apply(to: retryable, status: 500, headers: ["x-should-retry": "false"]).retryable)
        var hinted = retryable
        hinted.retryAfter = .seconds(38)
        #expect(RetryHint.apply(to: hinted, status: 429, headers: ["retry-after": "1"]).retryAfter == .seconds(38))
        // A redirect is never made retryable.
        #expect(!RetryHint.apply(to: final, status: 302, headers: ["x-should-retry": "true"]).retryable)
    }

    @Test func everyAdapterReadsTheSameHints() {
        let headers = ["llm_provider-retry-after-ms": "1200"]
        let body = Data(#"{"error":{"message":"slow down"}}"#.utf8)
        let openAI = OpenAIErrorMapping(configuration: OpenAIConfiguration(), providerName: "openai")
        let anthropic = AnthropicErrorMapping(configuration: AnthropicConfiguration(), providerName: "anthropic")
        let gemini = GeminiErrorMapping(configuration: GeminiConfiguration(), providerName: "gemini")
        for error in [
            openAI.error(status: 429, headers: headers, body: body, endpoint: "E"), anthropic.error(status: 429, headers: headers, body: body, endpoint: "E"),
            gemini.error(status: 429, headers: headers, body: body, endpoint: "E"), gemini.error(status: 503, headers: headers, body: body, endpoint: "E"),
        ] {
            #expect(error.retryable && error.retryAfter == .milliseconds(1200), "\(error)")
        }
    }
}

@Suite struct ProviderExchangeTests {
    static let key = "sk-plumbing-secret-key-0123456789"

    /// Each provider's error mapping (and the webhook's) quoting a body whose key straddles the
    /// preview's cut: redacting after cutting would leave a piece of it behind.
    @Test func theKeyIsRedactedBeforeTheCutEverywhere() {
        let key = APIKey(Self.key)
        let openAI = OpenAIErrorMapping(configuration: OpenAIConfiguration(apiKey: key), providerName: "openai")
        let anthropic = AnthropicErrorMapping(configuration: AnthropicConfiguration(apiKey: key), providerName: "anthropic")
        let gemini = GeminiErrorMapping(configuration: GeminiConfiguration(apiKey: key), providerName: "gemini")
        for cut in [200, 300, 600] {
            for shift in [1, 10, 20] {
                let text = String(repeating: "x", count: cut - shift) + Self.key + " and more"
                let bodies = [Data(text.utf8), Data(#"{"error":{"message":"\#(text)"}}"#.utf8)]
                for body in bodies {
                    for error in [
                        openAI.error(status: 400, headers: [:], body: body, endpoint: "E"), anthropic.error(status: 400, headers: [:], body: body, endpoint: "E"),
                        gemini.error(status: 400, headers: [:], body: body, endpoint: "E"),
                    ] {
                        for piece in stride(from: 0, to: Self.key.count - 8, by: 4) {
                            let fragment = String(Array(Self.key)[piece..<piece + 8])
                            #expect(!error.message.contains(fragment), "\(error.provider ?? "") cut \(cut) shift \(shift): \(error.message.suffix(80))")
                        }
                    }
                }
            }
        }
    }

    /// The webhook's receiver may echo the headers it was given (an `Authorization` of its own):
    /// they are redacted from its error bodies like a provider's key; its statuses say what is retried.
    @Test func theWebhooksErrorsRedactItsHeadersAndRetryWhatIsWorthIt() {
        let token = "Bearer hook-token-0123456789abcdef"
        let transport = TransportErrors(
            providerName: "webhook", displayBaseURL: "https://h/hook", requestTimeout: 30, deadlineSetting: "d", bodyLimitSetting: "b",
            urlSetting: "the webhook URL", text: ServerText(secrets: [token]))
        let errors = WebhookErrors(transport: transport)
        let echoed = errors.error(status: 500, headers: ["retry-after": "3"], body: Data("got Authorization: \(token)".utf8), endpoint: "https://h/hook")
        #expect(!echoed.message.contains("hook-token-0123456789abcdef") && echoed.message.contains("<redacted>"), "\(echoed.message)")
        #expect(echoed.retryable && echoed.retryAfter == .seconds(3) && echoed.code == "http_500")
        for status in [408, 409, 425, 429, 502] { #expect(errors.error(status: status, headers: [:], body: Data(), endpoint: "E").retryable, "\(status)") }
        for status in [400, 401, 404, 413] { #expect(!errors.error(status: status, headers: [:], body: Data(), endpoint: "E").retryable, "\(status)") }
        let redirect = errors.error(status: 307, headers: ["location": "https://elsewhere/"], body: Data(), endpoint: "https://h/hook")
        #expect(redirect.code == "redirect" && !redirect.retryable && redirect.message.contains("the webhook URL"), "\(redirect.message)")
    }

    @Test func anErrorBodyReadFromAStreamIsCapped() async throws {
        let pieces = AsyncThrowingStream<Data, any Error> { continuation in
            for _ in 0..<5 { continuation.yield(Data(repeating: 0x61, count: 700_000)) }
            continuation.finish()
        }
        let head = try await ProviderExchange<OpenAIErrorMapping>.head(of: HTTPClient.StreamedResponse(status: 500, headers: [:], body: pieces))
        #expect(head.count == ProviderExchange<OpenAIErrorMapping>.maxErrorBody)
    }

    @Test func onlyAnEventStreamIsAStream() {
        for type in ["text/event-stream", "text/event-stream; charset=utf-8", " Text/Event-Stream "] {
            #expect(ProviderExchange<OpenAIErrorMapping>.isEventStream(type), "\(type)")
        }
        for type in ["application/json", "text/plain", "text/event-streams", "", "text/html; text/event-stream"] {
            #expect(!ProviderExchange<OpenAIErrorMapping>.isEventStream(type), "\(type)")
        }
    }

    /// A refused endpoint: nothing is sent (the address has no server, yet the error is the
    /// refusal, not a connection failure) and the key is not even attached to the request.
    @Test func nothingLeavesWhenTheEndpointRulesFail() async {
        let configuration = OpenAIConfiguration(baseURL: URL(string: "http://example.invalid:1/v1")!, apiKey: APIKey(Self.key))
        let core = OpenAICore(configuration: configuration)
        let request = core.exchange.request(core.endpoint("chat/completions"), json: ["model": "m"])
        #expect(request.value(forHTTPHeaderField: "Authorization") == nil)
        do {
            _ = try await core.exchange.send(request)
            Issue.record("sent to a refused endpoint")
        } catch {
            #expect(error.kind == .invalidCommand && error.message.contains("plain http"), "\(error)")
        }
        let allowed = OpenAICore(configuration: OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:1/v1")!, apiKey: APIKey(Self.key)))
        #expect(allowed.exchange.request(allowed.endpoint("x")).value(forHTTPHeaderField: "Authorization") == "Bearer \(Self.key)")
    }

    @Test func endpointsAreNamedWithoutQueryOrUserinfo() {
        #expect(DisplayURL.endpoint(URL(string: "https://u:p@h.example/v1beta/x:y?key=secret&alt=sse")) == "https://h.example/v1beta/x:y")
        #expect(DisplayURL.endpoint(nil) == "(no URL)")
    }

    @Test func baseURLsAreReadByOneRule() throws {
        for provider in ["openai", "gemini", "anthropic"] {
            let options = ProviderOptions(baseURL: "ftp://example.com", environment: [:])
            guard case .failure(let error) = ProviderRegistry.withHTTPProviders.make(provider, options: options) else {
                Issue.record("\(provider) took ftp://")
                continue
            }
            #expect(error.message.contains("is not an http(s)"), "\(error)")
        }
        #expect(try EndpointRules.baseURL("http://127.0.0.1:9/gemini///", fallback: GeminiConfiguration.publicBaseURL, origin: true, example: "e").absoluteString == "http://127.0.0.1:9/gemini")
        #expect(throws: APIError.self) { try EndpointRules.baseURL("http://h/x?y=1", fallback: GeminiConfiguration.publicBaseURL, origin: true, example: "e") }
        #expect(throws: APIError.self) {
            try EndpointRules.checkReady(baseURL: URL(string: "https://example.com")!, hasKey: false, problem: nil, variables: ["K"])
        }
        try EndpointRules.checkReady(baseURL: URL(string: "http://localhost:1")!, hasKey: false, problem: nil, variables: ["K"])
    }

    @Test(arguments: ["openai", "gemini", "anthropic"])
    func capabilitiesAreDeclaredTheSameWayForEveryProvider(provider: String) throws {
        let options = ProviderOptions(baseURL: "http://127.0.0.1:9", environment: [:], capabilities: [.generation, .streaming])
        let made = try ProviderRegistry.withHTTPProviders.make(provider, options: options).get()
        #expect(ProviderCapability.probe(made) == [.generation, .streaming])
    }

    /// A part an adapter cannot send is named by its place in the plan — a shared part, or the
    /// call's own part counted without the shared ones — not by its index in the request.
    @Test func capabilityMissingNamesThePartsPath() async throws {
        let video = APIPart.inline(InlineData(mimeType: "video/mp4", data: Data([0, 1, 2])))
        let engine = try PipelineEngine(
            provider: OpenAIProvider.make(OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:9/v1")!)),
            configuration: EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 1)))
        let cases: [(ExecutionPlan, String)] = [
            (ExecutionPlan(calls: [APICall(model: "m", parts: [.text("q"), video])], sharedParts: [.text("context")]), "plan.calls[0].parts[1]"),
            (ExecutionPlan(calls: [APICall(model: "m", parts: [.text("q")])], sharedParts: [.text("a"), video]), "plan.shared_parts[1]"),
            (ExecutionPlan(calls: [APICall(model: "m", parts: [video])]), "plan.calls[0].parts[0]"),
        ]
        for (plan, path) in cases {
            let outcome = await engine.run(PlannedCommand(id: "c", plan: plan))
            let error = try #require(outcome.error)
            #expect(error.kind == .capabilityMissing && error.path == path, "\(error)")
        }
    }
}
