import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import Testing

/// The Gemini adapter's pure parts: request building, response folding, error bodies,
/// server integers and durations, configuration from CLI options.
@Suite struct GeminiUnitTests {
    let builder = GeminiRequestBuilder(providerName: "gemini")

    @Test func retryDelaysAreParsedDefensivelyAndCapped() {
        #expect(GeminiErrorMapping.retryDelay("38s") == .seconds(38))
        #expect(GeminiErrorMapping.retryDelay("1.5s") == .milliseconds(1500))
        #expect(GeminiErrorMapping.retryDelay("0.000000001s") == .zero)
        #expect(GeminiErrorMapping.retryDelay(["seconds": "2", "nanos": 500_000_000]) == .milliseconds(2500))
        #expect(GeminiErrorMapping.retryDelay("99999999999999999999s") == RetryHint.cap)
        #expect(GeminiErrorMapping.retryDelay("1e308s") == RetryHint.cap)
        for bad: JSONValue in ["-3s", "abc", "38", "nans", "infs", "", .null, ["seconds": "-5"], .array([])] {
            #expect(GeminiErrorMapping.retryDelay(bad) == nil, "\(bad)")
        }
    }

    /// `UNAVAILABLE` and `RESOURCE_EXHAUSTED` mean "later", whatever HTTP code a server or a
    /// proxy put on them; a daily quota stays final.
    @Test func statusesThatSayLaterAreRetryableWhateverTheHTTPCode() {
        let mapping = GeminiErrorMapping(configuration: GeminiConfiguration(), providerName: "gemini")
        func body(_ status: String, _ details: String = "") -> Data {
            Data(#"{"error":{"code":503,"message":"try later","status":"\#(status)"\#(details)}}"#.utf8)
        }
        for http in [400, 404, 200] {
            let unavailable = mapping.error(status: http, headers: [:], body: body("UNAVAILABLE"), endpoint: "E")
            #expect(unavailable.retryable && unavailable.kind == .providerError, "\(http): \(unavailable)")
            let exhausted = mapping.error(
                status: http, headers: [:], body: body("RESOURCE_EXHAUSTED", #","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"7s"}]"#),
                endpoint: "E")
            #expect(exhausted.retryable && exhausted.kind == .rateLimited && exhausted.retryAfter == .seconds(7), "\(http): \(exhausted)")
        }
        #expect(!mapping.error(status: 400, headers: [:], body: body("INVALID_ARGUMENT"), endpoint: "E").retryable)
    }

    @Test func serverIntegersNeverTrap() {
        #expect(GeminiResponses.integer("123") == 123)
        #expect(GeminiResponses.integer(.int(7)) == 7)
        #expect(GeminiResponses.integer("99999999999999999999999") == nil)
        #expect(GeminiResponses.integer(.double(1e300)) == nil)
        #expect(GeminiResponses.integer(.double(.nan)) == nil)
        let usage = GeminiResponses.usage([
            "promptTokenCount": "9223372036854775807", "candidatesTokenCount": .int(Int.max), "thoughtsTokenCount": .int(Int.max),
            "cachedContentTokenCount": -5,
        ])
        #expect(usage?.promptTokens == Limits.reportedTokens.upperBound)
        #expect(usage?.completionTokens == Limits.reportedTokens.upperBound)
        #expect(usage?.cachedTokens == 0)
    }

    @Test func thoughtPartsAreSkippedAndThinkingCountsAsOutput() throws {
        var assembler = GeminiResponses.Assembler(requestedModel: "gemini-2.5-pro", provider: "gemini")
        _ = try assembler.take([
            "candidates": [["content": ["role": "model", "parts": [["text": "Let me think…", "thought": true], ["text": "Paris."]]], "finishReason": "STOP"]],
            "usageMetadata": ["promptTokenCount": 10, "candidatesTokenCount": 2, "thoughtsTokenCount": 30, "totalTokenCount": 42],
            "modelVersion": "gemini-2.5-pro-001",
        ])
        let response = try assembler.response(endpoint: "test")
        #expect(response.text == "Paris.")
        #expect(response.model == "gemini-2.5-pro-001")
        #expect(response.usage == Usage(promptTokens: 10, completionTokens: 32, totalTokens: 42))
    }

    @Test func aBlockedPromptIsAPreciseErrorNotAnEmptySuccess() throws {
        var assembler = GeminiResponses.Assembler(requestedModel: "m", provider: "gemini")
        #expect {
            _ = try assembler.take(["promptFeedback": ["blockReason": "PROHIBITED_CONTENT"], "usageMetadata": ["promptTokenCount": 5]])
        } throws: { error in
            let error = error as? APIError
            return error?.code == "prompt_blocked_PROHIBITED_CONTENT" && error?.retryable == false && error?.message.contains("blocked") == true
        }
        var empty = GeminiResponses.Assembler(requestedModel: "m", provider: "gemini")
        _ = try empty.take(["usageMetadata": ["promptTokenCount": 5]])
        #expect(throws: APIError.self) { _ = try empty.response(endpoint: "test") }
        var recitation = GeminiResponses.Assembler(requestedModel: "m", provider: "gemini")
        _ = try recitation.take(["candidates": [["finishReason": "RECITATION"]]])
        #expect { _ = try recitation.response(endpoint: "test") } throws: { ($0 as? APIError)?.code == "finish_RECITATION" }
        var partial = GeminiResponses.Assembler(requestedModel: "m", provider: "gemini")
        _ = try partial.take(["candidates": [["content": ["parts": [["text": "Some"]]], "finishReason": "SAFETY"]]])
        #expect(try partial.response(endpoint: "test").finishReason == "content_filter")
    }

    @Test func statusBodiesGiveReasonRetryDelayAndQuota() {
        let body = Data(#"""
        [{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[
          {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinute"}]},
          {"@type":"type.googleapis.com/google.rpc.Help","links":[]},
          {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"17s"}]}}]
        """#.utf8)
        let status = GeminiErrorMapping.status(body)
        #expect(status.code == 429 && status.status == "RESOURCE_EXHAUSTED")
        #expect(status.retryDelay == .seconds(17))
        #expect(status.quotaIds == ["GenerateRequestsPerMinute"])
    }

    @Test func aKeyEchoedByTheServerIsRedactedBeforeTheMessageIsShortened() {
        let key = "AIzaSyTHISisAsecretKEY0123456789"
        let mapping = GeminiErrorMapping(configuration: GeminiConfiguration(apiKey: APIKey(key)), providerName: "gemini")
        // The key straddles the point where the message is cut.
        let text = String(repeating: "x", count: 590) + key + String(repeating: "y", count: 100)
        let error = mapping.error(status: 400, headers: [:], body: Data(text.utf8), endpoint: "e")
        #expect(!error.message.contains("AIzaSy"))
        #expect(!error.message.contains(String(key.prefix(8))))
        #expect(error.message.contains("<redacted>"))
    }

    @Test func providerOptionsMergeButNeverOverrideReservedKeys() throws {
        let base = GenerationRequest(model: "m", parts: [.text("x")], config: GenerationConfig(temperature: 0.5, providerOptions: ["topK": 3, "thinkingConfig": ["thinkingBudget": 0], "tools": []]))
        let body = try #require(try builder.body(for: base).objectValue)
        let generation = try #require(body["generationConfig"]?.objectValue)
        #expect(generation["temperature"] == .double(0.5))
        #expect(generation["topK"] == 3)
        #expect(generation["thinkingConfig"] != nil)
        #expect(body["tools"] == .array([]))
        for reserved in ["temperature", "max_output_tokens", "maxOutputTokens", "responseSchema", "systemInstruction", "cachedContent", "generationConfig", "contents"] {
            let request = GenerationRequest(model: "m", parts: [.text("x")], config: GenerationConfig(providerOptions: [reserved: 1]))
            #expect {
                _ = try builder.body(for: request)
            } throws: { error in
                let error = error as? APIError
                return error?.kind == .invalidCommand && error?.message.contains("provider_options.\(reserved)") == true
            }
        }
    }

    @Test func configLimitsAreCheckedBeforeSending() {
        let stops = GenerationRequest(model: "m", parts: [.text("x")], config: GenerationConfig(stop: ["a", "b", "c", "d", "e", "f"]))
        #expect { _ = try builder.body(for: stops) } throws: { ($0 as? APIError)?.message.contains("at most 5") == true }
        let seed = GenerationRequest(model: "m", parts: [.text("x")], config: GenerationConfig(seed: Int(Int32.max) + 1))
        #expect { _ = try builder.body(for: seed) } throws: { ($0 as? APIError)?.kind == .invalidCommand }
        let format = GenerationRequest(model: "m", parts: [.text("x")], config: GenerationConfig(responseFormat: ["type": "yaml"]))
        #expect { _ = try builder.body(for: format) } throws: { ($0 as? APIError)?.message.contains("'yaml'") == true }
        let placeholder = GenerationRequest(model: "m", parts: [.filePlaceholder(FilePlaceholder(path: "/tmp/a.pdf"))])
        #expect { _ = try builder.body(for: placeholder) } throws: { ($0 as? APIError)?.kind == .capabilityMissing }
    }

    /// Gemini 3's `thoughtSignature` sits beside `functionCall` on the call's part: read into the
    /// call's `signature` (whole and streamed), sent back on the same part in history, and kept
    /// through the wire (results, history) and the response cache.
    @Test func aThoughtSignatureGoesBackOnTheSamePart() throws {
        var assembler = GeminiResponses.Assembler(requestedModel: "gemini-3-flash-preview", provider: "gemini")
        _ = try assembler.take(try JSONParser.parse(
            #"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Kyiv"}},"thoughtSignature":"c2lnLTE="},{"functionCall":{"name":"get_time","args":{}}}]},"finishReason":"STOP"}]}"#))
        let calls = try assembler.response(endpoint: "test").toolCalls
        #expect(calls.map(\.signature) == ["c2lnLTE=", nil], "parallel calls: the first carries it")

        let history = [HistoryTurn(question: "Weather?", answer: "", toolCalls: calls)]
        let request = GenerationRequest(model: "gemini-3-flash-preview", parts: [
            .history(history), .toolResult(ToolResult(id: "gemini-call-0", name: "get_weather", content: ["t": 1])),
            .toolResult(ToolResult(id: "gemini-call-1", name: "get_time", content: ["t": 2])),
        ])
        let contents = try #require(try builder.body(for: request).objectValue?["contents"]?.arrayValue).map(JSONSerializer.serialize)
        #expect(contents[1] == #"{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Kyiv"}},"thoughtSignature":"c2lnLTE="},{"functionCall":{"name":"get_time","args":{}}}]}"#)

        // The wire keeps it: a result's tool call, read back as history.
        #expect(JSONSerializer.serialize(calls[0].wireValue) == #"{"id":"gemini-call-0","name":"get_weather","arguments":{"city":"Kyiv"},"signature":"c2lnLTE="}"#)
        #expect(JSONSerializer.serialize(calls[1].wireValue) == #"{"id":"gemini-call-1","name":"get_time","arguments":{}}"#)
        let line = #"{"id":"w","plan":{"calls":[{"model":"m","parts":[{"type":"history","turns":[{"question":"Q","tool_calls":[{"id":"c","name":"get_weather","arguments":{},"signature":"c2lnLTE="}]}]}]}]}}"#
        let command = try WireFormat.command(from: try JSONParser.parse(line), position: 1).get()
        guard case .history(let read) = command.plan.calls[0].parts[0] else {
            Issue.record("parts \(command.plan.calls[0].parts)")
            return
        }
        #expect(read[0].toolCalls.first?.signature == "c2lnLTE=")
        // And the response cache (a new stored format: older entries are misses).
        let answer = GenerationResponse(text: "", model: "m", finishReason: "tool_calls", usage: .zero, toolCalls: calls)
        #expect(CachedAnswer.decode(CachedAnswer.encode(answer))?.toolCalls == calls)
    }

    @Test func aCachedRequestNamesTheCacheAndCarriesNoSystemInstruction() throws {
        let cache = CacheReference(id: "cachedContents/abc", key: "k", model: "gemini-2.5-flash")
        let request = GenerationRequest(model: "gemini-2.5-flash", parts: [.text("q")], cache: cache)
        let body = try #require(try builder.body(for: request).objectValue)
        #expect(body["cachedContent"] == "cachedContents/abc")
        #expect(body["systemInstruction"] == nil)
        let count = try #require(try builder.countBody(for: request).objectValue?["generateContentRequest"]?.objectValue)
        #expect(count["model"] == "models/gemini-2.5-flash")
        #expect(count["cachedContent"] == "cachedContents/abc")
        var otherModel = request
        otherModel.model = "gemini-2.5-pro"
        #expect(throws: APIError.self) { _ = try builder.body(for: otherModel) }
        let cacheBody = try #require(try builder.cacheBody(
            for: CacheRequest(key: "k", model: "gemini-2.5-flash", systemInstruction: "S", parts: [.text("ctx")], ttlSeconds: 600), displayName: "commandpipeline-k").objectValue)
        #expect(cacheBody["model"] == "models/gemini-2.5-flash")
        #expect(cacheBody["ttl"] == "600s")
        #expect(cacheBody["systemInstruction"] != nil)
    }

    @Test func urlsKeepTheKeyOutAndEscapeModelNames() {
        let configuration = GeminiConfiguration(baseURL: URL(string: "http://127.0.0.1:9/gemini/")!, apiKey: APIKey("secret-key-123"))
        let url = configuration.url(GeminiConfiguration.modelPath("gemini 2.5/../x?y") + ":generateContent")
        #expect(url.absoluteString == "http://127.0.0.1:9/gemini/v1beta/models/gemini%202.5%2F..%2Fx%3Fy:generateContent", "a model name cannot leave models/")
        #expect(!url.absoluteString.contains("secret"))
        #expect(configuration.url("files", upload: true).absoluteString == "http://127.0.0.1:9/gemini/upload/v1beta/files")
        #expect(GeminiConfiguration.modelPath("tunedModels/mine") == "tunedModels/mine")
    }

    @Test func timestampsWithAnyFractionParse() throws {
        let nine = try #require(GeminiCore.timestamp("2026-11-22T10:00:00.123456789Z"))
        let none = try #require(GeminiCore.timestamp("2026-11-22T10:00:00Z"))
        #expect(abs(nine.timeIntervalSince(none) - 0.123456789) < 1e-6)
        #expect(GeminiCore.timestamp("yesterday") == nil)
    }

    @Test func theKeyComesFromTheNamedVariableElseGeminiElseGoogle() throws {
        func configuration(_ environment: [String: String], variable: String? = nil, base: String? = nil) throws(APIError) -> GeminiConfiguration {
            try GeminiConfiguration(options: ProviderOptions(baseURL: base, apiKeyEnvironmentVariable: variable, environment: environment))
        }
        #expect(try configuration(["GEMINI_API_KEY": "g1", "GOOGLE_API_KEY": "g2"]).apiKey == APIKey("g1"))
        #expect(try configuration(["GOOGLE_API_KEY": "g2"]).apiKeyVariable == "GOOGLE_API_KEY")
        #expect(try configuration(["MINE": "m", "GEMINI_API_KEY": "g1"], variable: "MINE").apiKey == APIKey("m"))
        #expect { _ = try configuration([:]) } throws: { ($0 as? APIError)?.message.contains("$GEMINI_API_KEY or $GOOGLE_API_KEY") == true }
        #expect(try configuration([:], base: "http://127.0.0.1:8000/gemini").apiKey == nil, "loopback servers may run without a key")
        #expect { _ = try configuration([:], base: "http://127.0.0.1:8000/v1beta") } throws: { ($0 as? APIError)?.message.contains("/v1beta") == true }
        #expect { _ = try configuration(["GEMINI_API_KEY": "k"], base: "ftp://x") } throws: { ($0 as? APIError)?.kind == .invalidCommand }
    }
}
