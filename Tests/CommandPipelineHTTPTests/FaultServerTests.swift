import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// The adapter against our own fault server: the faults FakeAI cannot produce.
@Suite(.serialized) struct FaultServerTests {
    func provider(_ capabilities: Set<ProviderCapability> = [.generation, .uploads, .streaming], timeout: TimeInterval = 30, key: String? = "sk-test-key-42") throws -> any GenerationCapability {
        let base = try Peers.faults.get()
        return OpenAIProvider.make(OpenAIConfiguration(baseURL: base, apiKey: key.map(APIKey.init), apiKeyVariable: "TEST_KEY", capabilities: capabilities, requestTimeout: timeout))
    }

    func failure(_ model: String, timeout: TimeInterval = 30) async throws -> APIError {
        do {
            _ = try await provider(timeout: timeout).generate(GenerationRequest(model: model, parts: [.text("hi")]))
        } catch let error as APIError {
            return error
        }
        Issue.record("\(model) did not fail")
        return APIError(.internal, "no failure")
    }

    @Test func streamingEndsWithWhatTheNonStreamingCallGives() async throws {
        let provider = try provider()
        let request = GenerationRequest(model: "echo", parts: [.text("one two three")], config: GenerationConfig(systemInstruction: "s"))
        let direct = try await provider.generate(request)
        var deltas = ""
        var final: GenerationResponse?
        for try await chunk in (provider as! any StreamingCapability).stream(request) {
            switch chunk {
            case .delta(let d): deltas += d
            case .toolCall: break
            case .completed(let r): final = r
            }
        }
        #expect(direct.text == "echo: one two three")
        #expect(final == direct)
        #expect(deltas == direct.text)
        #expect(direct.usage.cachedTokens == 2)
    }

    @Test func aRateLimitCarriesRetryAfter() async throws {
        let error = try await failure("rate-limited")
        #expect(error.kind == .rateLimited)
        #expect(error.retryable)
        #expect(error.retryAfter == .seconds(2))
        #expect(error.message.contains("Rate limit reached"))
    }

    @Test func serverErrorsAreRetryableAndRequestErrorsAreNot() async throws {
        let unavailable = try await failure("unavailable")
        #expect(unavailable.kind == .providerError && unavailable.retryable)
        let bad = try await failure("bad-request")
        #expect(bad.kind == .providerError && !bad.retryable)
        #expect(bad.message.contains("Invalid value for 'temperature'"))
        let quota = try await failure("quota")
        #expect(!quota.retryable)
        #expect(quota.code == "insufficient_quota")
        let garbage = try await failure("bad-json")
        #expect(garbage.message.contains("not JSON"))
    }

    @Test func authenticationFailuresHintAtTheVariableAndHideTheKey() async throws {
        let error = try await failure("auth")
        #expect(error.message.contains("$TEST_KEY"))
        #expect(!error.message.contains("sk-test-key-42"))
        #expect(!"\(error)".contains("sk-test-key-42"))
    }

    @Test func aStreamDroppedMidAnswerIsARetryableError() async throws {
        var received = ""
        do {
            for try await chunk in (try provider() as! any StreamingCapability).stream(GenerationRequest(model: "drop-stream", parts: [.text("x")])) {
                if case .delta(let d) = chunk { received += d }
            }
            Issue.record("a truncated stream was accepted")
        } catch let error as APIError {
            #expect(error.retryable)
            #expect(["stream_truncated", "connection_lost"].contains(error.code ?? ""))
            #expect(error.billedUsage == nil, "OpenAI reports usage at the end of a stream: a cut one reported none")
        }
        // A stream cut after its usage chunk, and an answer with usage but no choices, were billed for it.
        let text = "usage please"
        let expected = Usage(promptTokens: 3, completionTokens: 5, cachedTokens: 2)
        do {
            for try await _ in (try provider() as! any StreamingCapability).stream(GenerationRequest(model: "usage-drop", parts: [.text(text)])) {}
            Issue.record("a stream without [DONE] was accepted")
        } catch let error as APIError {
            #expect(error.billedUsage == expected, "\(error)")
        }
        do {
            _ = try await provider().generate(GenerationRequest(model: "no-choices", parts: [.text(text)]))
            Issue.record("an answer without choices was accepted")
        } catch let error as APIError {
            #expect(error.message.contains("no choices") && error.billedUsage == expected, "\(error)")
        }
        #expect(received == "Hello wor")
    }

    @Test func anErrorInsideA200StreamFails() async throws {
        do {
            for try await _ in (try provider() as! any StreamingCapability).stream(GenerationRequest(model: "stream-error", parts: [.text("x")])) {}
            Issue.record("the error payload was ignored")
        } catch let error as APIError {
            #expect(error.message.contains("overloaded mid-stream"))
        }
    }

    @Test func anAnswerThatNeverComesIsATimeout() async throws {
        let error = try await failure("hang", timeout: 1)
        #expect(error.kind == .timeout)
        #expect(error.retryable)
    }

    @Test func cancellingTheTaskCancelsTheRequest() async throws {
        let provider = try provider()
        let stats = try Peers.faults.get().appendingPathComponent("stats")
        func hangs() async throws -> Int { (try await peerJSON(stats) as? [String: Any])?["hang"] as? Int ?? 0 }
        let before = try await hangs()
        let task = Task { try await provider.generate(GenerationRequest(model: "hang", parts: [.text("x")])) }
        // Cancel once the server holds the request (it counts arrivals), not after a guessed delay.
        var polls = 0
        while try await hangs() == before && polls < 10_000 { polls += 1 }
        #expect(try await hangs() > before, "the request reached the server")
        task.cancel()
        let result = await task.result
        // Cancelled, not timed out: the request ended when the task did, not after 30 s.
        guard case .failure(let error) = result else {
            Issue.record("a request that never answers succeeded")
            return
        }
        #expect((error as? APIError)?.kind == .cancelled, "\(error)")
    }

    @Test func aRefusedConnectionNamesTheBaseURL() async throws {
        let provider = OpenAIProvider.make(OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:9/v1")!))
        do {
            _ = try await provider.generate(GenerationRequest(model: "m", parts: [.text("x")]))
            Issue.record("connected to a closed port")
        } catch let error as APIError {
            #expect(error.message.contains("cannot connect to http://127.0.0.1:9/v1"))
            #expect(error.retryable)
        }
    }

    @Test func uploadsStreamTheWholeFileFromDisk() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("upload-\(UUID().uuidString).bin")
        var bytes = [UInt8](repeating: 0, count: 3 << 20)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 9) }
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let reference = try await (try provider() as! any UploadsCapability).upload(FileUpload(path: file.path, mimeType: "application/octet-stream"))
        #expect(reference.uri == "file-" + SHA256.hex(bytes), "the server received exactly the file's bytes")
    }

    @Test func theEngineIsTheOnlyRetryLayer() async throws {
        let engine = try PipelineEngine(
            provider: try provider(),
            configuration: EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(5), jitter: 0)))
        let prompt = "retry me \(UUID().uuidString)"
        let result = await engine.execute(PlannedCommand(id: "r", plan: ExecutionPlan(call: APICall(model: "flaky-2", parts: [.text(prompt)]))))
        let finalized = try #require(result.success)
        #expect(finalized.telemetry.calls.first?.attempts == 3)
        #expect(finalized.responses.first?.text == "echo: " + prompt)
    }
}

extension Result {
    var success: Success? { if case .success(let s) = self { s } else { nil } }
}

/// Connections follow the run's concurrency: the client never queues what `--concurrency` lets go.
@Suite struct ConnectionConcurrencyTests {
    @Test func twoHundredFiftySixSlowCommandsAreAllInFlightAtOnce() async throws {
        let base = try Peers.faults.get()
        let model = "gate-256-\(UUID().uuidString.prefix(8))"
        let input = (0..<256).map { #"{"id":"c\#($0)","model":"\#(model)","prompt":"p\#($0)"}"# }.joined(separator: "\n")
        let run = try await runPipeline(
            ["--provider", "openai", "--base-url", base.absoluteString, "--concurrency", "256", "--quiet", "--max-attempts", "1"], stdin: input)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.lines.count == 256)
        let stats = try await peerJSON(base.appendingPathComponent("stats")) as? [String: Any]
        // The server holds each request until 256 are held at once (60 s at most): all 256, not the 64 a default client allows.
        #expect(stats?["max_inflight:\(model)"] as? Int == 256, "\(String(describing: stats?["max_inflight:\(model)"]))")
    }

    @Test func theConnectionLimitIsClampedWhereItEnters() {
        #expect(ProviderOptions(maxConnectionsPerHost: 0).maxConnectionsPerHost == 1)
        #expect(ProviderOptions(maxConnectionsPerHost: Int.max).maxConnectionsPerHost == 65_536)
        #expect(ProviderOptions().maxConnectionsPerHost == nil)
        #expect(HTTPClient.defaultMaxConnectionsPerHost == 64)
    }
}
