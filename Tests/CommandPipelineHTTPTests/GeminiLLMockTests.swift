import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A JSON request to a test peer's own control routes (never through the adapter).
func peerJSON(_ url: URL, method: String = "GET", body: Any? = nil) async throws -> Any {
    var request = URLRequest(url: url)
    request.httpMethod = method
    request.timeoutInterval = 30
    if let body {
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let (data, response) = try await URLSession.shared.data(for: request)
    let status = (response as? HTTPURLResponse)?.statusCode ?? 0
    guard (200..<300).contains(status) else {
        throw Peers.PeerError(description: "\(method) \(url) answered \(status): \(String(decoding: data, as: UTF8.self))")
    }
    return try JSONSerialization.jsonObject(with: data)
}

/// llmock's control API: scripted behaviours and the journal of what it received.
struct LLMock {
    let origin: URL

    static func start() throws -> LLMock { LLMock(origin: try Peers.llmock.get()) }

    /// The `--base-url` for gemini: llmock serves Gemini under `/gemini`.
    var geminiBase: URL { origin.appendingPathComponent("gemini") }

    /// Queues behaviours; each matches only `model`, so concurrent tests never take each other's.
    func script(model: String, _ behaviors: [[String: Any]]) async throws {
        let matched = behaviors.map { behavior -> [String: Any] in
            var behavior = behavior
            var match = behavior["match"] as? [String: Any] ?? [:]
            match["model"] = model
            behavior["match"] = match
            return behavior
        }
        _ = try await peerJSON(origin.appendingPathComponent("_llmock/scenario"), method: "POST", body: ["behaviors": matched])
    }

    /// The requests llmock journaled for `model`, oldest first.
    func requests(model: String) async throws -> [[String: Any]] {
        let journal = try await peerJSON(origin.appendingPathComponent("_llmock/requests")) as? [String: Any]
        return (journal?["requests"] as? [[String: Any]] ?? []).filter { $0["model"] as? String == model }
    }

    func adapter(key: String? = "llmock-test-key-0001") -> GeminiAdapter {
        GeminiAdapter(GeminiConfiguration(baseURL: geminiBase, apiKey: key.map(APIKey.init), requestTimeout: 30))
    }

    func engine(attempts: Int = 3) throws -> PipelineEngine {
        try PipelineEngine(
            provider: adapter(),
            configuration: EngineConfiguration(
                retryPolicy: RetryPolicy(maxAttempts: attempts, baseDelay: .milliseconds(5), jitter: 0, maxRetryAfter: .milliseconds(20))))
    }
}

/// The Gemini adapter against llmock (PyPI), a real server for `generateContent` and
/// `streamGenerateContent` with scripted replies and faults. Every test uses its own model
/// name, so scripted behaviours and journal entries never cross between tests.
@Suite struct GeminiLLMockTests {
    @Test func generationMapsEveryPartKindAndTheConfig() async throws {
        let mock = try LLMock.start()
        let model = "gemini-map-\(UUID().uuidString.prefix(8))"
        try await mock.script(model: model, [["type": "reply", "text": "The answer is 42."]])
        let plan = ExecutionPlan(calls: [APICall(
            model: model,
            parts: [
                .history([HistoryTurn(question: "What is 6 × 7?", answer: "42")]),
                .inline(InlineData(mimeType: "image/png", data: Data([0x89, 0x50, 0x4e, 0x47]))),
                .fileRef(FileReference(uri: "https://generativelanguage.googleapis.com/v1beta/files/abc", mimeType: "application/pdf")),
                .text("And again?"),
            ],
            config: GenerationConfig(
                systemInstruction: "Answer with a number.", temperature: 0.2, topP: 0.9, maxTokens: 64, stop: ["END"], seed: 7,
                providerOptions: ["topK": 20, "safetySettings": [["category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"]]]))])
        let finalized = try #require(await mock.engine().execute(PlannedCommand(id: "map", plan: plan)).success)
        let response = try #require(finalized.responses.first)
        #expect(response.text == "The answer is 42.")
        #expect(response.finishReason == "stop")
        #expect(response.usage.promptTokens > 0 && response.usage.completionTokens > 0)
        #expect(response.usage.totalTokens == response.usage.promptTokens + response.usage.completionTokens)
        #expect(finalized.telemetry.provider == "gemini")

        let sent = try #require(try await mock.requests(model: model).first?["body"] as? [String: Any])
        let contents = try #require(sent["contents"] as? [[String: Any]])
        #expect(contents.map { $0["role"] as? String } == ["user", "model", "user"])
        let lastParts = try #require(contents.last?["parts"] as? [[String: Any]])
        #expect((lastParts[0]["inlineData"] as? [String: Any])?["data"] as? String == Data([0x89, 0x50, 0x4e, 0x47]).base64EncodedString())
        #expect((lastParts[1]["fileData"] as? [String: Any])?["fileUri"] as? String == "https://generativelanguage.googleapis.com/v1beta/files/abc")
        #expect(lastParts[2]["text"] as? String == "And again?")
        let system = try #require(sent["systemInstruction"] as? [String: Any])
        #expect((system["parts"] as? [[String: Any]])?.first?["text"] as? String == "Answer with a number.")
        let generation = try #require(sent["generationConfig"] as? [String: Any])
        #expect(generation["temperature"] as? Double == 0.2)
        #expect(generation["topP"] as? Double == 0.9)
        #expect(generation["maxOutputTokens"] as? Int == 64)
        #expect(generation["stopSequences"] as? [String] == ["END"])
        #expect(generation["seed"] as? Int == 7)
        #expect(generation["topK"] as? Int == 20, "provider_options merge into generationConfig")
        #expect(sent["safetySettings"] != nil, "request-level provider_options go beside generationConfig")
        #expect(generation["safetySettings"] == nil)
    }

    @Test func aResponseSchemaGivesJSONThatFollowsIt() async throws {
        let mock = try LLMock.start()
        let model = "gemini-schema-\(UUID().uuidString.prefix(8))"
        let schema: JSONValue = ["type": "object", "properties": ["city": ["type": "string"], "population": ["type": "integer"]], "required": ["city", "population"]]
        let request = GenerationRequest(
            model: model, parts: [.text("Largest city?")],
            config: GenerationConfig(responseFormat: ["type": "json_schema", "json_schema": ["name": "city", "schema": schema]]))
        let response = try await mock.adapter().generate(request)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(response.text.utf8)) as? [String: Any])
        #expect(object["city"] is String)
        #expect(object["population"] is Int)
        let sent = try #require(try await mock.requests(model: model).first?["body"] as? [String: Any])
        let generation = try #require(sent["generationConfig"] as? [String: Any])
        #expect(generation["responseMimeType"] as? String == "application/json")
        #expect((generation["responseJsonSchema"] as? [String: Any])?["required"] as? [String] == ["city", "population"])
    }

    @Test func nonStopFinishReasonsArePreciseNeverAnEmptySuccess() async throws {
        let mock = try LLMock.start()
        let model = "gemini-finish-\(UUID().uuidString.prefix(8))"
        try await mock.script(model: model, [
            ["type": "reply", "text": "A partial answ", "finish_reason": "length"],
            ["type": "reply", "text": "", "finish_reason": "content_filter"],
        ])
        let adapter = mock.adapter()
        let cut = try await adapter.generate(GenerationRequest(model: model, parts: [.text("Long story")]))
        #expect(cut.text == "A partial answ")
        #expect(cut.finishReason == "length", "MAX_TOKENS is the engine's `length`")
        await #expect {
            _ = try await adapter.generate(GenerationRequest(model: model, parts: [.text("Something unsafe")]))
        } throws: { error in
            guard let error = error as? APIError else { return false }
            // The refused answer still reported its usage: what it was billed, priced as a failed attempt.
            return error.kind == .providerError && error.code == "finish_SAFETY" && !error.retryable && error.message.contains("SAFETY")
                && (error.billedUsage?.promptTokens ?? 0) > 0
        }
    }

    @Test func errorsMapToKindsAndTheEngineRetriesOnlyWhatIsRetryable() async throws {
        let mock = try LLMock.start()
        let model = "gemini-errors-\(UUID().uuidString.prefix(8))"
        let key = "llmock-test-key-0001"
        try await mock.script(model: model, [
            ["type": "fail", "status": 429, "retry_after": 1.5, "code": "RESOURCE_EXHAUSTED"],
            ["type": "fail", "status": 503],
            ["type": "fail", "status": 400, "code": "INVALID_ARGUMENT", "message": "API key not valid. Please pass a valid API key. (\(key))"],
        ])
        let adapter = mock.adapter(key: key)
        let request = GenerationRequest(model: model, parts: [.text("Hi")])
        do {
            _ = try await adapter.generate(request)
            Issue.record("a scripted 429 succeeded")
        } catch let error as APIError {
            #expect(error.kind == .rateLimited)
            #expect(error.retryable)
            #expect(error.retryAfter == .milliseconds(1500), "llmock sends Retry-After when there is no RetryInfo")
        }
        do {
            _ = try await adapter.generate(request)
            Issue.record("a scripted 503 succeeded")
        } catch let error as APIError {
            #expect(error.kind == .providerError && error.retryable && error.code == "UNAVAILABLE")
        }
        do {
            _ = try await adapter.generate(request)
            Issue.record("a scripted invalid key succeeded")
        } catch let error as APIError {
            #expect(error.code == "API_KEY_INVALID")
            #expect(!error.retryable)
            #expect(error.message.contains("$GEMINI_API_KEY"), "the hint names the key variable")
            #expect(!error.message.contains(key), "the key never appears in a message")
            #expect(error.message.contains("<redacted>"))
        }

        // Through the engine: a 503 then a success is one retry; a 400 is not retried.
        try await mock.script(model: model, [["type": "fail", "status": 503], ["type": "reply", "text": "recovered"]])
        let recovered = try #require(await mock.engine().execute(PlannedCommand(id: "retry", plan: ExecutionPlan(calls: [APICall(model: model, parts: [.text("Hi")])]))).success)
        #expect(recovered.responses.first?.text == "recovered")
        #expect(recovered.telemetry.retries == 1)
        try await mock.script(model: model, [["type": "fail", "status": 404, "code": "NOT_FOUND", "message": "models/x is not found"]])
        let outcome = try await mock.engine().run(PlannedCommand(id: "404", plan: ExecutionPlan(calls: [APICall(model: model, parts: [.text("Hi")])])))
        let failed = try #require(outcome.error)
        #expect(failed.kind == .providerError && !failed.retryable)
        #expect(outcome.telemetry.retries == 0)
    }

    @Test func streamingDeliversDeltasAndTheLastChunksUsage() async throws {
        let mock = try LLMock.start()
        let model = "gemini-stream-\(UUID().uuidString.prefix(8))"
        try await mock.script(model: model, [["type": "reply", "text": "one two three four five six"]])
        var deltas: [String] = []
        var final: GenerationResponse?
        for try await chunk in mock.adapter().stream(GenerationRequest(model: model, parts: [.text("Count")])) {
            switch chunk {
            case .delta(let d): deltas.append(d)
            case .toolCall: break
            case .completed(let r): final = r
            }
        }
        let response = try #require(final)
        #expect(deltas.count > 1, "llmock streams word-sized pieces")
        #expect(deltas.joined() == "one two three four five six")
        #expect(response.text == deltas.joined())
        #expect(response.finishReason == "stop")
        #expect(response.usage.completionTokens > 0 && response.usage.promptTokens > 0)
        let path = try #require(try await mock.requests(model: model).first?["path"] as? String)
        #expect(path.hasSuffix(":streamGenerateContent"))
    }

    @Test(arguments: ["truncate", "disconnect", "malformed"])
    func aBrokenStreamIsARetryableErrorNeverASuccess(fault: String) async throws {
        let mock = try LLMock.start()
        let model = "gemini-\(fault)-\(UUID().uuidString.prefix(8))"
        try await mock.script(model: model, [
            ["type": "stream_fault", "kind": fault, "after_chunks": 1],
            ["type": "reply", "text": "alpha beta gamma delta epsilon"],
        ])
        var deltas = ""
        do {
            for try await chunk in mock.adapter().stream(GenerationRequest(model: model, parts: [.text("Go")])) {
                if case .delta(let d) = chunk { deltas += d }
                if case .completed(let r) = chunk { Issue.record("a \(fault) stream completed: \(r.text)") }
            }
            Issue.record("a \(fault) stream ended without an error")
        } catch let error as APIError {
            #expect(error.retryable, "\(fault): \(error)")
            #expect(error.kind == .providerError)
            if fault == "truncate" { #expect(error.code == "stream_truncated") }
            if fault == "malformed" { #expect(error.code == "stream_malformed") }
        }
        #expect(deltas.count < "alpha beta gamma delta epsilon".count)
    }

    /// llmock speaks Gemini without `cachedContents` (404): a command with a cache plan runs
    /// uncached and says why, as below the minimum size, instead of failing.
    @Test func aServerWithoutExplicitCachesRunsTheCommandUncached() async throws {
        let mock = try LLMock.start()
        let model = "gemini-nocache-\(UUID().uuidString.prefix(8))"
        let input = #"{"id":"c","plan":{"calls":[{"model":"\#(model)","parts":[{"type":"text","text":"Q?"}]}],"shared_parts":[{"type":"text","text":"shared context"}],"cache":{"ttl_seconds":600}}}"#
        var environment = ProcessInfo.processInfo.environment
        environment["GEMINI_API_KEY"] = "cli-test-key-0001"
        let run = try await runPipeline(["--provider", "gemini", "--base-url", mock.geminiBase.absoluteString, "--quiet"], stdin: input, environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        let record = try #require(run.records.first)
        #expect(record["status"] as? String == "succeeded", "\(record)")
        let cache = (record["telemetry"] as? [String: Any])?["cache"] as? [String: Any]
        let reason = cache?["uncached_reason"] as? String
        #expect(reason?.contains("no explicit caches") == true, "\(String(describing: cache))")
        #expect(try await mock.requests(model: model).count == 1, "one generateContent, uncached")
    }

    @Test func theCLIRunsGeminiAgainstLLMock() async throws {
        let mock = try LLMock.start()
        let model = "gemini-cli-\(UUID().uuidString.prefix(8))"
        let input = """
        {"id":"plain","model":"\(model)","prompt":"Hello"}
        {"id":"system","model":"\(model)","prompt":"Hello","system":"Be terse."}
        {"id":"fan","model":"\(model)","prompts":["One?","Two?","Three?"]}
        {"id":"reserved","plan":{"calls":[{"model":"\(model)","parts":[{"type":"text","text":"x"}],"config":{"provider_options":{"maxOutputTokens":5}}}]}}
        """
        var environment = ProcessInfo.processInfo.environment
        environment["GEMINI_API_KEY"] = "cli-test-key-0001"
        let run = try await runPipeline(["--provider", "gemini", "--base-url", mock.geminiBase.absoluteString, "--quiet"], stdin: input, environment: environment)
        #expect(run.status == 1, "\(run.stderr)")
        let records = run.records
        #expect(records.map { $0["id"] as? String } == ["plain", "system", "fan", "reserved"])
        #expect(records.map { $0["status"] as? String } == ["succeeded", "succeeded", "succeeded", "failed"])
        for record in records.prefix(3) {
            #expect(((record["usage"] as? [String: Any])?["total_tokens"] as? Int ?? 0) > 0)
            #expect((record["telemetry"] as? [String: Any])?["provider"] as? String == "gemini")
        }
        #expect((records[2]["responses"] as? [Any])?.count == 3)
        let error = records[3]["error"] as? [String: Any]
        #expect(error?["kind"] as? String == "invalid_command")
        #expect((error?["message"] as? String)?.contains("maxOutputTokens") == true)
        #expect((error?["message"] as? String)?.contains("config.max_tokens") == true)
        #expect(!run.stdout.contains("cli-test-key-0001") && !run.stderr.contains("cli-test-key-0001"))
        let sent = try await mock.requests(model: model)
        #expect(sent.count == 5, "the reserved key was refused before sending")
    }
}
