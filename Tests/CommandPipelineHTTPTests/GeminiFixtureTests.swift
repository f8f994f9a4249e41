import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The Gemini fixture server (`Tests/Tools/gemini_fixture.py`): first proven faithful with
/// Google's own `google-genai` SDK, then used for what llmock does not serve — the Files API,
/// `cachedContents` and `countTokens` — by the adapter, the engine and the CLI. Each test
/// uses its own API key, and reads the fixture's counters for that key only.
@Suite struct GeminiFixtureTests {
    struct Fixture {
        let origin: URL
        let key: String

        static func start(_ label: String) throws -> Fixture {
            Fixture(origin: try Peers.geminiFixture.get(), key: "test-\(label)-\(UUID().uuidString.prefix(8))")
        }

        func configuration(clock: any PipelineClock = SystemClock()) -> GeminiConfiguration {
            GeminiConfiguration(
                baseURL: origin, apiKey: APIKey(key), requestTimeout: 30, pollInterval: .seconds(1), maxPollInterval: .seconds(4),
                maxProcessingWait: .seconds(30), clock: clock)
        }

        /// Polling waits go through a clock that jumps to each deadline at once: no real time passes.
        func adapter() -> GeminiAdapter { GeminiAdapter(configuration(clock: SteppingClock())) }

        func stats() async throws -> [String: Any] {
            var components = URLComponents(url: origin.appendingPathComponent("_fixture/stats"), resolvingAgainstBaseURL: false)!
            components.queryItems = [URLQueryItem(name: "key", value: key)]
            return try await peerJSON(components.url!) as? [String: Any] ?? [:]
        }

        func failNext(_ pathContains: String, status: Int, extra: [String: Any] = [:]) async throws {
            var body: [String: Any] = ["key": key, "path_contains": pathContains, "status": status, "times": 1]
            body.merge(extra) { $1 }
            _ = try await peerJSON(origin.appendingPathComponent("_fixture/fail"), method: "POST", body: body)
        }

        func file(_ name: String) async throws -> [String: Any] {
            var request = URLRequest(url: origin.appendingPathComponent("v1beta/\(name)"))
            request.setValue(key, forHTTPHeaderField: "x-goog-api-key")
            let (data, _) = try await URLSession.shared.data(for: request)
            return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        }
    }

    static let largeContext = String(repeating: "The shared context of every question in this run. ", count: 120)

    @Test func googlesOwnSDKCanUseTheFixture() throws {
        let fixture = try Fixture.start("sdk")
        let (status, text) = try runProcess(
            Peers.python, [Peers.packageRoot.appendingPathComponent("Tests/Tools/gemini_sdk_check.py").path, fixture.origin.absoluteString, fixture.key],
            timeout: 180)
        #expect(status == 0, "google-genai could not use the fixture:\n\(text)")
        #expect(text.contains("SDK CHECK OK"))
    }

    @Test func anUploadIsResumableStreamedAndPolledUntilActive() async throws {
        let fixture = try Fixture.start("upload")
        // 3 MiB of varied bytes: the fixture checks the declared length and the offset.
        var bytes = Data(count: 3 << 20)
        for i in 0..<bytes.count { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 9) }
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("report.pdf")
        try bytes.write(to: path)
        let opened = try OpenedFile.open(path.path).get()
        let reference = try await fixture.adapter().upload(FileUpload(file: opened, mimeType: "application/pdf"))
        #expect(reference.uri.hasPrefix(fixture.origin.absoluteString + "/v1beta/files/"))
        #expect(reference.mimeType == "application/pdf")
        let stats = try await fixture.stats()
        #expect(stats["uploads_started"] as? Int == 1)
        #expect(stats["uploads_finalized"] as? Int == 1)
        #expect(stats["upload_chunks"] as? Int == 1)
        #expect(stats["file_gets"] as? Int == 1, "PROCESSING after the upload, ACTIVE on the first poll")
        #expect(stats["key_in_url"] as? Int == 0)
        let name = "files/" + reference.uri.split(separator: "/").last!
        let file = try await fixture.file(name)
        #expect(file["state"] as? String == "ACTIVE")
        #expect(file["sizeBytes"] as? String == String(bytes.count))
        #expect(file["displayName"] as? String == "report.pdf")
        let facts = file["fixture"] as? [String: Any]
        #expect(facts?["sha256"] as? String == SHA256.hex(bytes), "the bytes arrived intact")
        #expect(facts?["uploadSawKey"] as? Bool == false, "the key is not sent to the upload URL")
    }

    @Test func aFileThatFailsOrNeverBecomesActiveIsAClearUploadFailure() async throws {
        let fixture = try Fixture.start("failing")
        let dir = try temporaryDirectory(files: ["fails-processing.pdf": "%PDF-1.4 broken", "never-active.mp4": "not really a video"])
        let adapter = fixture.adapter()
        let engine = try PipelineEngine(provider: adapter, configuration: EngineConfiguration(retryPolicy: .none))
        for (file, expected) in [("fails-processing.pdf", "state FAILED"), ("never-active.mp4", "still PROCESSING")] {
            let plan = ExecutionPlan(
                calls: [APICall(model: "gemini-2.5-flash", parts: [.filePlaceholder(FilePlaceholder(path: dir.appendingPathComponent(file).path)), .text("Describe it.")])],
                uploadTasks: [UploadTask(partIndex: 0)])
            let error = try #require(await engine.execute(PlannedCommand(id: file, plan: plan)).failure)
            #expect(error.kind == .uploadFailed, "\(file): \(error)")
            #expect(error.message.contains(expected), "\(file): \(error.message)")
            #expect(error.message.contains(file))
        }
        let stats = try await fixture.stats()
        // fails-processing: one poll. never-active: after 1, 2, 4, 4, 4, 4, 4, 4 s of waiting (27 s),
        // the next wait would pass the 30 s bound, so 8 polls.
        #expect(stats["file_gets"] as? Int == 1 + 8, "the never-active file was polled with growing waits until the bound")
        #expect(stats["generate"] as? Int == 0, "nothing was generated from a file that is not ACTIVE")
    }

    @Test func cachesAreCreatedFoundByKeyUsedAndDeleted() async throws {
        let fixture = try Fixture.start("cache")
        let adapter = fixture.adapter()
        let key = "cache-\(UUID().uuidString)"
        let cacheRequest = CacheRequest(key: key, model: "gemini-2.5-flash", systemInstruction: "Answer briefly.", parts: [.text(Self.largeContext)], ttlSeconds: 600)
        let reference = try await adapter.createCache(cacheRequest.context, key: cacheRequest.key, ttlSeconds: cacheRequest.ttlSeconds)
        #expect(reference.id.hasPrefix("cachedContents/"))
        #expect(reference.model == "gemini-2.5-flash")
        let cachedTokens = try #require(reference.tokenCount)
        #expect(cachedTokens == Int((Double(Self.largeContext.utf8.count) / 4).rounded(.up)) + 4)
        #expect(try #require(reference.expiresAt).timeIntervalSinceNow > 500)

        // A fresh adapter (a later run) finds it by key through cachedContents.list.
        let later = fixture.adapter()
        let found = try #require(try await later.cache(forKey: key))
        #expect(found.id == reference.id)
        #expect(try await later.cache(forKey: "no-such-key-\(UUID())") == nil)

        // Generating names the cache and does not repeat the system instruction.
        let request = GenerationRequest(model: "gemini-2.5-flash", parts: [.text("What is shared?")], cache: reference)
        let response = try await adapter.generate(request)
        #expect(response.text.contains("[with \(reference.id)]"))
        #expect(response.usage.cachedTokens == cachedTokens)
        #expect(response.usage.promptTokens == cachedTokens + 4, "promptTokenCount includes the cached tokens")
        #expect(try await adapter.countTokens(request) == cachedTokens + 4)

        // A request that names a cache and carries a system instruction is refused before sending.
        var withSystem = request
        withSystem.config.systemInstruction = "Again"
        await #expect(throws: APIError.self) { _ = try await adapter.generate(withSystem) }

        try await adapter.deleteCache(reference)
        do {
            _ = try await adapter.generate(request)
            Issue.record("a deleted cache served a request")
        } catch let error as APIError {
            #expect(error.kind == .providerError && error.code == "PERMISSION_DENIED" && !error.retryable)
        }
        let stats = try await fixture.stats()
        #expect(stats["caches_created"] as? Int == 1)
        #expect(stats["caches_deleted"] as? Int == 1)
        #expect(stats["generate_with_cache"] as? Int == 1)
    }

    @Test func aContextBelowTheMinimumRunsUncachedAndTelemetrySaysWhy() async throws {
        let fixture = try Fixture.start("small")
        let engine = try PipelineEngine(provider: fixture.adapter(), configuration: EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(5), jitter: 0)))
        let plan = ExecutionPlan(
            calls: [APICall(model: "gemini-2.5-flash", parts: [.text("Question?")], config: GenerationConfig(systemInstruction: "Be brief."))],
            sharedParts: [.text("A short shared context.")], cache: CachePlan(ttlSeconds: 600))
        for id in ["first", "second"] {
            let finalized = try #require(await engine.execute(PlannedCommand(id: id, plan: plan)).success, "\(id)")
            let cache = try #require(finalized.telemetry.cache)
            #expect(cache.id == nil)
            #expect(!cache.created && !cache.reused)
            #expect(cache.uncachedReason?.contains("min_total_token_count=1024") == true, "\(cache.uncachedReason ?? "nil")")
            #expect(finalized.responses.first?.usage.cachedTokens == 0)
            #expect(finalized.responses.first?.text.contains("[with") == false)
        }
        let stats = try await fixture.stats()
        #expect(stats["cache_creations_refused"] as? Int == 1, "the refusal is remembered for the TTL: asked once, not per command")
        #expect(stats["generate"] as? Int == 2)
    }

    @Test func googleRPCStatusErrorsMapToKindsWithHints() async throws {
        let fixture = try Fixture.start("errors")
        let adapter = fixture.adapter()
        let request = GenerationRequest(model: "gemini-2.5-flash", parts: [.text("Hi")])
        func failure(_ body: () async throws -> Void) async -> APIError? {
            do {
                try await body()
                return nil
            } catch {
                return error as? APIError
            }
        }

        // 429 whose details list QuotaFailure and Help before RetryInfo.
        try await fixture.failNext(":generateContent", status: 429, extra: ["retryDelay": "1.5s", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel"])
        let limited = await failure { _ = try await adapter.generate(request) }
        #expect(limited?.kind == .rateLimited && limited?.retryable == true)
        #expect(limited?.retryAfter == .milliseconds(1500))

        try await fixture.failNext(":generateContent", status: 429, extra: ["retryDelay": "38s", "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"])
        let daily = await failure { _ = try await adapter.generate(request) }
        #expect(daily?.kind == .providerError && daily?.retryable == false && daily?.code == "quota_exhausted_per_day")

        for status in [500, 503, 504] {
            try await fixture.failNext(":generateContent", status: status)
            let server = await failure { _ = try await adapter.generate(request) }
            #expect(server?.kind == .providerError && server?.retryable == true, "\(status)")
        }

        let invalidKey = GeminiProvider.make(GeminiConfiguration(baseURL: fixture.origin, apiKey: APIKey("invalid-\(fixture.key)"), apiKeyVariable: "MY_GEMINI_KEY"))
        let invalid = await failure { _ = try await invalidKey.generate(request) }
        #expect(invalid?.kind == .providerError && invalid?.retryable == false && invalid?.code == "API_KEY_INVALID")
        #expect(invalid?.message.contains("$MY_GEMINI_KEY") == true)

        let noKey = GeminiProvider.make(GeminiConfiguration(baseURL: fixture.origin, apiKey: nil))
        let missing = await failure { _ = try await noKey.generate(request) }
        #expect(missing?.code == "PERMISSION_DENIED" && missing?.retryable == false)

        let unknownFile = GenerationRequest(model: "gemini-2.5-flash", parts: [.fileRef(FileReference(uri: fixture.origin.absoluteString + "/v1beta/files/nope", mimeType: "application/pdf")), .text("Hi")])
        let gone = await failure { _ = try await adapter.generate(unknownFile) }
        #expect(gone?.code == "PERMISSION_DENIED" && gone?.message.contains("files/nope") == true)
        #expect((try await fixture.stats())["key_in_url"] as? Int == 0)
    }

    @Test func tokenCountingCountsWhatGenerateWouldSend() async throws {
        let fixture = try Fixture.start("count")
        let adapter = fixture.adapter()
        let request = GenerationRequest(
            model: "gemini-2.5-flash", parts: [.history([HistoryTurn(question: "abcd", answer: "efgh")]), .text("12345678")],
            config: GenerationConfig(systemInstruction: "abcdefgh"))
        #expect(try await adapter.countTokens(request) == 1 + 1 + 2 + 2)
        let generated = try await adapter.generate(request)
        #expect(generated.usage.promptTokens == 6)
        #expect(ProviderCapability.probe(adapter) == [.generation, .uploads, .caching, .streaming, .tokenCounting, .batch])
    }

    @Test func theCLIRunsAFileOfCommandsSharingOneContextAndOnePDFWithOneUploadAndOneCache() async throws {
        let fixture = try Fixture.start("e2e")
        let dir = try temporaryDirectory(files: ["paper.pdf": "%PDF-1.4\n" + String(repeating: "page text\n", count: 500)])
        let shared = #"[{"type":"text","text":"\#(Self.largeContext)"},{"type":"file_placeholder","path":"paper.pdf"}]"#
        let lines = (1...6).map { i in
            #"{"id":"q\#(i)","plan":{"shared_parts":\#(shared),"calls":[{"model":"gemini-2.5-flash","parts":[{"type":"text","text":"Question \#(i)?"}],"config":{"system_instruction":"Answer briefly."}}],"cache":{"ttl_seconds":600}}}"#
        }
        var environment = ProcessInfo.processInfo.environment
        environment["GEMINI_API_KEY"] = fixture.key
        environment["GOOGLE_API_KEY"] = nil
        let run = try await runPipeline(
            ["--provider", "gemini", "--base-url", fixture.origin.absoluteString, "--quiet", "--concurrency", "4"], stdin: lines.joined(separator: "\n"),
            currentDirectory: dir, environment: environment)
        #expect(run.status == 0, "\(run.stderr)\n\(run.stdout)")
        let records = run.records
        #expect(records.map { $0["id"] as? String } == (1...6).map { "q\($0)" }, "results in input order")
        var cacheIDs = Set<String>()
        var created = 0
        for (i, record) in records.enumerated() {
            #expect(record["status"] as? String == "succeeded", "\(record)")
            let response = (record["responses"] as? [[String: Any]])?.first
            #expect((response?["text"] as? String)?.contains("Question \(i + 1)?") == true)
            #expect(((record["usage"] as? [String: Any])?["cached_tokens"] as? Int ?? 0) > 0)
            let telemetry = record["telemetry"] as? [String: Any]
            let cache = telemetry?["cache"] as? [String: Any]
            if let id = cache?["id"] as? String { cacheIDs.insert(id) }
            if cache?["created"] as? Bool == true { created += 1 } else { #expect(cache?["reused"] as? Bool == true) }
        }
        #expect(cacheIDs.count == 1, "every command used the same cache: \(cacheIDs)")
        #expect(created == 1)
        #expect(!run.stdout.contains(fixture.key) && !run.stderr.contains(fixture.key))
        let stats = try awaitStats(fixture)
        #expect(stats["uploads_started"] as? Int == 1, "exactly one upload for the whole file")
        #expect(stats["uploads_finalized"] as? Int == 1)
        #expect(stats["caches_created"] as? Int == 1, "exactly one cache for the whole file")
        #expect(stats["generate_with_cache"] as? Int == 6, "every command generated with the cache")
        #expect(stats["key_in_url"] as? Int == 0)

        let capabilities = try await runPipeline(["capabilities", "--provider", "gemini", "--base-url", fixture.origin.absoluteString], environment: environment)
        #expect(capabilities.status == 0, "\(capabilities.stderr)")
        #expect(capabilities.stdout.contains(#""capabilities":["generation","uploads","caching","streaming","token_counting","batch"]"#), "\(capabilities.stdout)")
    }

    /// The fixture's counters, read from synchronous test code.
    private func awaitStats(_ fixture: Fixture) throws -> [String: Any] {
        var components = URLComponents(url: fixture.origin.appendingPathComponent("_fixture/stats"), resolvingAgainstBaseURL: false)!
        components.queryItems = [URLQueryItem(name: "key", value: fixture.key)]
        let data = try Data(contentsOf: components.url!)
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }
}

/// A clock on which time passes only by sleeping: `sleep(until:)` moves `now` to the deadline
/// and returns at once. Bounded waits are then exact and cost no real time.
final class SteppingClock: PipelineClock {
    private let current = Mutex<Duration>(.zero)
    var now: Duration { current.withLock { $0 } }
    func sleep(until deadline: Duration) async throws {
        try Task.checkCancellation()
        current.withLock { $0 = max($0, deadline) }
    }
}
