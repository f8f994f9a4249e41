import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// The adapter, the engine and the CLI against our Anthropic fixture (Tests/Tools/anthropic_fixture.py),
/// whose fidelity is checked first by driving it with Anthropic's own Python SDK.
/// Serialized: the tests read the fixture's counters and move its cache clock.
@Suite(.serialized) struct AnthropicFixtureTests {
    var base: URL { get throws { try Peers.anthropicFixture.get() } }
    var key: String { Peers.anthropicFixtureKey }
    var provider: any GenerationCapability { get throws { AnthropicPeers.provider(try base, key: key) } }

    func stats() async throws -> [String: Any] {
        try await AnthropicPeers.control(try base.appendingPathComponent("_fixture/stats"), method: "GET")
    }

    func counter(_ name: String) async throws -> Int { try await stats()[name] as? Int ?? -1 }

    /// A shared context well above the 1024-token minimum, unique per use so no earlier run cached it.
    func largeContext(_ tag: String = UUID().uuidString) -> String {
        "Manual \(tag). " + (1...500).map { "Rule \($0): every stage returns a new state." }.joined(separator: " ")
    }

    @Test func theOfficialSDKCanUseTheFixture() throws {
        let script = TestPaths.packageRoot.appendingPathComponent("Tests/Tools/anthropic_sdk_check.py").path
        let (status, output) = try AnthropicPeers.run(TestPaths.python, [script, try base.absoluteString, key], timeout: 120)
        #expect(status == 0, "\(output)")
        #expect(output.contains("SDK CHECK PASSED"), "\(output)")
        #expect(output.contains("ok   second request reads the cache"))
    }

    @Test func messagesTakeSystemHistoryImagesAndPDFs() async throws {
        let png = Data([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
        let request = GenerationRequest(
            model: "claude-sonnet-4-6",
            parts: [
                .history([.init(question: "Earlier question", answer: "Earlier answer")]),
                .inline(InlineData(mimeType: "image/png", data: png)), .inline(InlineData(mimeType: "application/pdf", data: Data("%PDF-1.4".utf8))),
                .text("Describe both."),
            ],
            config: GenerationConfig(systemInstruction: "You are exact.", temperature: 0.2, topP: 0.9, maxTokens: 100))
        let response = try await provider.generate(request)
        #expect(response.text == "echo: Describe both.")
        #expect(response.finishReason == "stop")
        // system 4 + question 4 + answer 4 + image 258 + PDF 258 + text 4: the fixture saw every block.
        #expect(response.usage.promptTokens == 4 + 4 + 4 + 258 + 258 + 4)
        #expect(response.usage.cachedTokens == 0 && response.usage.cacheCreationTokens == 0)
        #expect(try await (provider as! any TokenCountingCapability).countTokens(request) == response.usage.promptTokens)
    }

    @Test func refusalsTruncationAndStopSequencesStayVisible() async throws {
        let refused = try await provider.generate(GenerationRequest(model: "claude-refuse", parts: [.text("x")]))
        #expect(refused.finishReason == "refusal" && refused.text.isEmpty)
        let cut = try await provider.generate(GenerationRequest(model: "claude-sonnet-4-6", parts: [.text(String(repeating: "long ", count: 20))], config: GenerationConfig(maxTokens: 2)))
        #expect(cut.finishReason == "length" && cut.text == "echo: lo")
        let stopped = try await provider.generate(GenerationRequest(model: "claude-sonnet-4-6", parts: [.text("alpha STOP beta")], config: GenerationConfig(stop: ["STOP"])))
        #expect(stopped.finishReason == "stop" && stopped.text == "echo: alpha ")
    }

    @Test func errorsAreMappedAndTheKeyNeverShows() async throws {
        let wrongKey = try #require(await AnthropicPeers.failure(AnthropicPeers.provider(try base, key: "sk-ant-wrong-key-123", variable: "MY_CLAUDE_KEY"), GenerationRequest(model: "claude-sonnet-4-6", parts: [.text("x")])))
        #expect(!wrongKey.retryable && wrongKey.message.contains("HTTP 401") && wrongKey.message.contains("$MY_CLAUDE_KEY"))
        let echoed = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-echo-key", parts: [.text("x")])))
        #expect(!echoed.message.contains(key) && echoed.message.contains("<redacted>"))
        let overloaded = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-overloaded", parts: [.text("x")])))
        #expect(overloaded.retryable && overloaded.code == "overloaded_error")
        let limited = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-rate-limited", parts: [.text("x")])))
        #expect(limited.kind == .rateLimited && limited.retryAfter == .seconds(2))
        let tooLarge = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-too-large", parts: [.text("x")])))
        #expect(!tooLarge.retryable && tooLarge.message.contains("HTTP 413") && tooLarge.message.contains("413 Request Entity Too Large"))
        let server = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-server-error", parts: [.text("x")])))
        #expect(server.retryable && server.code == "api_error")
        // The fixture enforces the API's rules, so a wrong body would fail here.
        let missingFile = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-sonnet-4-6", parts: [.fileRef(FileReference(uri: "file_nope", mimeType: "application/pdf")), .text("x")])))
        #expect(missingFile.message.contains("HTTP 404") && missingFile.message.contains("file_nope"))
    }

    @Test func streamsEndWithMessageStopOrFail() async throws {
        let request = GenerationRequest(model: "claude-stream-extra", parts: [.text("one two three")], config: GenerationConfig(systemInstruction: "S"))
        let (deltas, final) = try await AnthropicPeers.stream(try provider, request)
        let response = try #require(final)
        #expect(deltas == "echo: one two three" && response.text == deltas)
        #expect(response == (try await provider.generate(request)))
        let (error, received) = try await AnthropicPeers.streamFailure(try provider, GenerationRequest(model: "claude-stream-error", parts: [.text("a b c")]))
        #expect(error?.retryable == true && error?.code == "overloaded_error", "\(String(describing: error))")
        #expect(received == "echo:")
        let (truncated, _) = try await AnthropicPeers.streamFailure(try provider, GenerationRequest(model: "claude-stream-truncate", parts: [.text("a b c")]))
        #expect(truncated?.retryable == true && truncated?.code == "stream_truncated")
        // Both broke after message_start reported the usage they are billed for ("a b c": 2 input tokens; 1 output).
        #expect(error?.billedUsage == Usage(promptTokens: 2, completionTokens: 1))
        #expect(truncated?.billedUsage == Usage(promptTokens: 2, completionTokens: 1))
        // An error before any answer reports no usage, and none is invented.
        let overloaded = try #require(await AnthropicPeers.failure(try provider, GenerationRequest(model: "claude-overloaded", parts: [.text("a b c")])))
        #expect(overloaded.billedUsage == nil)
    }

    @Test func aFileIsUploadedOnceAndReferencedByADocumentBlock() async throws {
        let text = "The cache stage runs before the generate stage."
        let file = try temporaryDirectory(files: ["notes.txt": text]).appendingPathComponent("notes.txt")
        let uploadsBefore = try await counter("uploads")
        let engine = PipelineEngine(provider: try provider)
        let plan = ExecutionPlan(calls: [APICall(model: "claude-sonnet-4-6", parts: [.filePlaceholder(FilePlaceholder(path: file.path, mimeType: "text/plain")), .text("Summarise.")])])
        let finalized = try #require(await engine.execute(PlannedCommand(id: "file", plan: plan)).success)
        #expect(finalized.telemetry.uploads.performed == 1)
        #expect(try await counter("uploads") == uploadsBefore + 1)
        #expect(finalized.responses.first?.text == "echo: Summarise.")
        // The fixture counted the uploaded text as the document's tokens: it resolved the file id.
        #expect(finalized.usage.promptTokens == (text.utf8.count + 3) / 4 + 3)
    }

    @Test func theSecondCommandWithTheSameSharedContextReadsTheCache() async throws {
        let engine = PipelineEngine(provider: try provider)
        let context = largeContext()
        func command(_ id: String, _ question: String) -> PlannedCommand {
            PlannedCommand(id: id, plan: ExecutionPlan(
                calls: [APICall(model: "claude-sonnet-4-6", parts: [.text(question)], config: GenerationConfig(systemInstruction: "Answer from the manual."))],
                sharedParts: [.text(context)], cache: CachePlan(ttlSeconds: 3600)))
        }
        let (writes, reads) = (try await counter("cache_writes"), try await counter("cache_reads"))
        let first = try #require(await engine.execute(command("first", "What is rule 1?")).success)
        let cache = try #require(first.telemetry.cache)
        // The first command writes the prefix (one warm-up request) …
        #expect(cache.created && cache.kind == "prefix" && cache.id?.hasPrefix("prefix:") == true)
        let written = try #require(cache.tokenCount)
        #expect(written > 1024)
        #expect(try await counter("cache_writes") == writes + 1)
        // … and its own call already reads it.
        #expect(first.responses.first?.usage.cachedTokens == written)
        #expect(first.responses.first?.usage.cacheCreationTokens == 0)
        let second = try #require(await engine.execute(command("second", "What is rule 2?")).success)
        #expect(second.telemetry.cache?.reused == true && second.telemetry.cache?.created == false)
        let usage = try #require(second.responses.first?.usage)
        #expect(usage.cachedTokens == written)
        #expect(usage.cacheCreationTokens == 0)
        #expect(usage.promptTokens == written + 4)  // the question's own tokens (15 bytes: 4) come on top
        #expect(second.responses.first?.text == "echo: What is rule 2?")
        #expect(try await counter("cache_writes") == writes + 1, "the cache was written once")
        #expect(try await counter("cache_reads") == reads + 2)
    }

    @Test func aFanOutWritesOnceAndEveryCallReads() async throws {
        let engine = PipelineEngine(provider: try provider)
        let writes = try await counter("cache_writes")
        let plan = ExecutionPlan(
            calls: (1...4).map { APICall(model: "claude-sonnet-4-6", parts: [.text("Question \($0)?")]) },
            sharedParts: [.text(largeContext())], cache: CachePlan(ttlSeconds: 300))
        let finalized = try #require(await engine.execute(PlannedCommand(id: "fan", plan: plan)).success)
        let written = try #require(finalized.telemetry.cache?.tokenCount)
        #expect(finalized.responses.map(\.usage.cachedTokens) == [written, written, written, written])
        #expect(finalized.usage.cacheCreationTokens == 0)
        #expect(try await counter("cache_writes") == writes + 1)
    }

    @Test func aPrefixTheProviderDroppedIsWrittenAgainVisibly() async throws {
        let engine = PipelineEngine(provider: try provider)
        let context = largeContext()
        func command(_ id: String) -> PlannedCommand {
            PlannedCommand(id: id, plan: ExecutionPlan(calls: [APICall(model: "claude-sonnet-4-6", parts: [.text("Q?")])], sharedParts: [.text(context)], cache: CachePlan(ttlSeconds: 300)))
        }
        let first = try #require(await engine.execute(command("a")).success)
        let written = try #require(first.telemetry.cache?.tokenCount)
        // The fixture's clock moves past the 5-minute TTL; the engine still holds its lease.
        try await AnthropicPeers.control(try base.appendingPathComponent("_fixture/advance").appending(queryItems: [URLQueryItem(name: "seconds", value: "301")]))
        let second = try #require(await engine.execute(command("b")).success)
        #expect(second.telemetry.cache?.reused == true)
        #expect(second.responses.first?.usage.cachedTokens == 0)
        #expect(second.responses.first?.usage.cacheCreationTokens == written, "the call wrote the prefix again, and says so")
        let third = try #require(await engine.execute(command("c")).success)
        #expect(third.responses.first?.usage.cachedTokens == written)
    }

    @Test func aContextBelowTheMinimumIsNotCachedAndNothingFails() async throws {
        let engine = PipelineEngine(provider: try provider)
        let plan = ExecutionPlan(calls: [APICall(model: "claude-sonnet-4-6", parts: [.text("Q?")])], sharedParts: [.text("A short context \(UUID()).")], cache: CachePlan())
        let finalized = try #require(await engine.execute(PlannedCommand(id: "small", plan: plan)).success)
        #expect(finalized.telemetry.cache?.tokenCount == 0)
        #expect(finalized.usage.cachedTokens == 0 && finalized.usage.cacheCreationTokens == 0)
        #expect(finalized.responses.first?.text == "echo: Q?")
    }

    @Test func theCLIWritesTheSharedContextOnceAndReadsItAfter() async throws {
        let context = largeContext()
        let commands = (1...6).map { index in
            #"{"id":"q\#(index)","plan":{"calls":[{"model":"claude-sonnet-4-6","parts":[{"type":"text","text":"Question \#(index)?"}]}],"# +
                #""shared_parts":[{"type":"text","text":"\#(context)"}],"cache":{"ttl_seconds":3600}}}"#
        }.joined(separator: "\n")
        var environment = AnthropicPeers.environment
        environment["MY_FIXTURE_KEY"] = key
        let writes = try await counter("cache_writes")
        let run = try await runPipeline(
            ["--provider", "anthropic", "--base-url", try base.absoluteString, "--api-key-env", "MY_FIXTURE_KEY", "--concurrency", "6", "--quiet"],
            stdin: commands, environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        let records = run.records
        #expect(records.count == 6)
        #expect(records.allSatisfy { $0["status"] as? String == "succeeded" })
        #expect(records.filter { $0[path: "telemetry.cache.created"] as? Bool == true }.count == 1, "one command writes the cache")
        #expect(records.allSatisfy { $0[path: "telemetry.cache.kind"] as? String == "prefix" })
        let written = records.compactMap { $0[path: "telemetry.cache.token_count"] as? Int }
        #expect(written.count == 6 && Set(written).count == 1 && written[0] > 1024)
        #expect(records.allSatisfy { $0[path: "usage.cached_tokens"] as? Int == written.first }, "every command reads the cache")
        #expect(records.allSatisfy { $0[path: "usage.cache_creation_tokens"] == nil })
        #expect(try await counter("cache_writes") == writes + 1)
        #expect(!run.stdout.contains(key) && !run.stderr.contains(key))
        #expect((try await stats()["auth_headers"] as? [String])?.last == "x-api-key")
    }

    @Test func theCLINamesTheKeyVariableOnAnAuthenticationFailure() async throws {
        var environment = AnthropicPeers.environment
        environment["WRONG_KEY_VAR"] = "sk-ant-not-the-right-one"
        let run = try await runPipeline(
            ["--provider", "anthropic", "--base-url", try base.absoluteString, "--api-key-env", "WRONG_KEY_VAR", "--quiet"],
            stdin: #"{"model":"claude-sonnet-4-6","prompt":"hi"}"#, environment: environment)
        #expect(run.status == 1)
        let message = run.records.first?[path: "error.message"] as? String ?? ""
        #expect(message.contains("HTTP 401") && message.contains("$WRONG_KEY_VAR"), "\(run.stdout)")
        #expect(!run.stdout.contains("sk-ant-not-the-right-one") && !run.stderr.contains("sk-ant-not-the-right-one"))
    }

    @Test func theCLIPrintsTheCapabilitiesOfTheRealAPI() async throws {
        var environment = AnthropicPeers.environment
        environment["ANTHROPIC_API_KEY"] = "sk-ant-capabilities-check"
        let run = try await runPipeline(["capabilities", "--provider", "anthropic"], environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains(#"{"provider":"anthropic","capabilities":["generation","uploads","caching","streaming","token_counting","batch"]}"#), "\(run.stdout)")
        #expect(!run.stdout.contains("sk-ant-capabilities-check"))
        environment["ANTHROPIC_API_KEY"] = nil
        let noKey = try await runPipeline(["capabilities", "--provider", "anthropic"], environment: environment)
        #expect(noKey.status == 2 && noKey.stderr.contains("$ANTHROPIC_API_KEY"))
    }
}
