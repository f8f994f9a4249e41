import CommandPipeline
import Foundation
import Synchronization
import Testing

/// Issue 24 part 3: the response cache's key, the in-memory store, and the engine answering
/// from it (`ResponseCacheUnit`).
@Suite struct ResponseCacheTests {
    static let base = GenerationRequest(
        model: "m", parts: [.text("system context"), .text("hello")],
        config: GenerationConfig(systemInstruction: "be brief", temperature: 0.5, maxTokens: 100, responseFormat: ["type": "json_object"], providerOptions: ["a": 1, "b": ["x": true, "y": 2.5]]))

    static func key(_ request: GenerationRequest = base, provider: String = "p", endpoint: String = "http://e", files: [Int: String] = [:]) -> ResponseCacheKey {
        ResponseCacheKey(provider: provider, endpoint: endpoint, request: request, fileDigests: files)
    }

    // MARK: The key

    @Test func theDocumentIsCanonicalJSONWithSortedKeys() {
        let request = GenerationRequest(model: "m", parts: [.text("hi")], config: GenerationConfig(temperature: 1, providerOptions: ["z": 1, "a": 2.0]))
        let document = String(decoding: ResponseCacheKey.document(provider: "mock", endpoint: "", request: request), as: UTF8.self)
        #expect(document == #"{"config":{"provider_options":{"a":2,"z":1},"temperature":1},"endpoint":"","model":"m","parts":[{"text":"hi","type":"text"}],"provider":"mock","v":1}"#)
        #expect(ResponseCacheKey(provider: "mock", endpoint: "", request: request).digest.count == 64)
    }

    /// The document is written straight into bytes; it is the same document as the canonical
    /// form of the wire values it stands for (`CanonicalJSON` of the `JSONValue` tree), for every
    /// config field and every kind of part.
    @Test func theDocumentWrittenDirectlyIsTheCanonicalFormOfTheTree() throws {
        let tool = ToolDefinition(name: "get_weather", description: "the weather", parameters: try JSONParser.parse(#"{"type":"object","properties":{"city":{"type":"string"}}}"#))
        let full = GenerationConfig(
            systemInstruction: "be \"brief\"\n", temperature: 0.25, topP: 1, maxTokens: 7, stop: ["\n", "END"], seed: -3, responseFormat: ["type": "json_object", "a": 2.0],
            providerOptions: ["z": 1, "a": ["y": 1.5, "b": false]])
        var configs = [GenerationConfig(), full]
        var withTools = full
        withTools.maxRepairs = 2
        withTools.tools = [tool]
        withTools.toolChoice = .named("get_weather")
        configs.append(withTools)
        for choice in [ToolChoice.auto, .none, .required] {
            var c = GenerationConfig(temperature: 2)
            c.toolChoice = choice
            configs.append(c)
        }
        let parts: [APIPart] = [
            .text("plain"), .text("\u{1}\"é\u{1F600}"), .fileRef(FileReference(uri: "files/abc", mimeType: "application/pdf")),
            .filePlaceholder(FilePlaceholder(path: "/tmp/a.pdf")), .inline(InlineData(mimeType: "image/png", data: Data([1, 2, 3]))),
            .history([HistoryTurn(question: "q", answer: "a")]),
            .toolResult(ToolResult(id: "call_1", name: "get_weather", content: ["t": 20])),
        ]
        for config in configs {
            for files in [[:], [3: "d1"]] as [[Int: String]] {
                let request = GenerationRequest(model: "m\"1", parts: parts, config: config)
                var treeParts: [JSONValue] = []
                for (i, part) in parts.enumerated() {
                    if let digest = files[i] {
                        treeParts.append(["type": "file", "mime_type": .string(part.placeholder?.effectiveMimeType ?? ""), "sha256": .string(digest)])
                    } else if case .inline(let inline) = part {
                        treeParts.append(["type": "inline", "mime_type": .string(inline.mimeType), "sha256": .string(SHA256.hex(inline.data))])
                    } else {
                        treeParts.append(part.wireValue)
                    }
                }
                let tree: JSONValue = [
                    "v": 1, "provider": "openai", "endpoint": "https://api.example/v1", "model": .string(request.model), "parts": .array(treeParts),
                    "config": config.wireValue,
                ]
                var expected: [UInt8] = []
                CanonicalJSON.write(tree, to: &expected)
                let document = ResponseCacheKey.document(provider: "openai", endpoint: "https://api.example/v1", request: request, fileDigests: files)
                #expect(String(decoding: document, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
            }
        }
    }

    /// The stored form: read back whole, directly for a plain answer (escapes included) and
    /// through the parser for one with `parsed` or tool calls or in another member order; a
    /// damaged, older or truncated entry is nil (a miss), never a wrong answer.
    @Test func aStoredAnswerReadsBackWholeAndDamageIsAMiss() throws {
        let usage = Usage(promptTokens: 12, completionTokens: 3, totalTokens: 15, cachedTokens: 2, cacheCreationTokens: 9_000_000_000, cacheCreationLongTokens: 4)
        let answers = [
            GenerationResponse(text: "plain", model: "m", usage: usage),
            GenerationResponse(text: "line\none\t\"quoted\" back\\slash é 😀 \u{1}", model: "m/ü", finishReason: "length", usage: .zero),
            GenerationResponse(text: "", model: "", usage: Usage(promptTokens: 0, completionTokens: 0)),
            GenerationResponse(text: "{\"a\":1}", model: "m", usage: usage, parsed: ["a": 1]),
            GenerationResponse(text: "", model: "m", finishReason: "tool_calls", usage: usage, toolCalls: [ToolCall(id: "c1", name: "f", arguments: ["x": 1], signature: "sig")]),
        ]
        for answer in answers {
            let bytes = CachedAnswer.encode(answer)
            #expect(CachedAnswer.decode(bytes) == answer)
            // Every prefix is a miss (the direct reader never takes a truncated entry).
            for cut in stride(from: 0, to: bytes.count, by: 3) { #expect(CachedAnswer.decode(Array(bytes[..<cut])) == nil) }
            // One byte more after the object: not an entry.
            #expect(CachedAnswer.decode(bytes + Array("x".utf8)) == nil)
        }
        let plain = CachedAnswer.encode(answers[0])
        #expect(String(decoding: plain, as: UTF8.self) == #"{"v":3,"text":"plain","model":"m","finish_reason":"stop","usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"cached_tokens":2,"cache_creation_tokens":9000000000,"cache_creation_long_tokens":4}}"#)
        // Another member order (or white space) is the parser's: the same answer.
        let reordered = #"{"usage":{"completion_tokens":3,"prompt_tokens":12,"total_tokens":15,"cached_tokens":2,"cache_creation_tokens":9000000000,"cache_creation_long_tokens":4}, "finish_reason":"stop","model":"m","text":"plain","v":3}"#
        #expect(CachedAnswer.decode(Array(reordered.utf8)) == answers[0])
        // A \u escape goes to the parser too.
        let unicode = #"{"v":3,"text":"\u00e9t\u00e9","model":"m","finish_reason":"stop","usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"cached_tokens":0,"cache_creation_tokens":0,"cache_creation_long_tokens":0}}"#
        #expect(CachedAnswer.decode(Array(unicode.utf8))?.text == "été")
        // Another version, a leading zero, a raw control character, invalid UTF-8: misses.
        for damaged in [
            plain.replacing(Array(#""v":3"#.utf8), with: Array(#""v":2"#.utf8)),
            plain.replacing(Array(#""prompt_tokens":12"#.utf8), with: Array(#""prompt_tokens":012"#.utf8)),
            plain.replacing(Array("plain".utf8), with: [0x70, 0x0A, 0x61]),
            plain.replacing(Array("plain".utf8), with: [0x70, 0xC3, 0x28]),
        ] {
            #expect(CachedAnswer.decode(damaged) == nil)
        }
    }

    @Test func everyFieldChangesTheKey() {
        let original = Self.key()
        var variants: [(String, ResponseCacheKey)] = [
            ("provider", Self.key(provider: "q")),
            ("endpoint", Self.key(endpoint: "http://other")),
        ]
        func variant(_ name: String, _ change: (inout GenerationRequest) -> Void) {
            var request = Self.base
            change(&request)
            variants.append((name, Self.key(request)))
        }
        variant("model") { $0.model = "n" }
        variant("a part's text") { $0.parts[1] = .text("hello!") }
        variant("part order") { $0.parts.reverse() }
        variant("one part more") { $0.parts.append(.text("")) }
        variant("history") { $0.parts.append(.history([HistoryTurn(question: "q", answer: "a")])) }
        variant("inline bytes") { $0.parts.append(.inline(InlineData(mimeType: "image/png", data: Data([1, 2, 3])))) }
        variant("system instruction") { $0.config.systemInstruction = "be long" }
        variant("temperature") { $0.config.temperature = 0.7 }
        variant("top_p") { $0.config.topP = 0.9 }
        variant("max_tokens") { $0.config.maxTokens = 101 }
        variant("stop") { $0.config.stop = ["\n"] }
        variant("seed") { $0.config.seed = 7 }
        variant("response_format") { $0.config.responseFormat = ["type": "text"] }
        variant("max_repairs") { $0.config.maxRepairs = 2 }
        variant("provider_options") { $0.config.providerOptions = ["a": 2, "b": ["x": true, "y": 2.5]] }
        for (name, key) in variants { #expect(key != original, "changing the \(name) must change the key") }
        #expect(Set(variants.map(\.1)).count == variants.count, "every variant has its own key")
        // Inline parts are keyed by their bytes.
        var one = Self.base, two = Self.base
        one.parts.append(.inline(InlineData(mimeType: "image/png", data: Data([1, 2, 3]))))
        two.parts.append(.inline(InlineData(mimeType: "image/png", data: Data([1, 2, 4]))))
        #expect(Self.key(one) != Self.key(two))
    }

    @Test func theOrderOfJSONKeysDoesNotChangeTheKey() {
        var reordered = Self.base
        reordered.config.providerOptions = ["b": ["y": 2.5, "x": true], "a": 1.0]
        reordered.config.responseFormat = .object(JSONObject([(key: "type", value: "json_object")]))
        #expect(Self.key(reordered) == Self.key())
        let schema: JSONValue = ["type": "json_schema", "json_schema": ["name": "p", "schema": ["type": "object", "required": ["a"]]]]
        let sameSchema: JSONValue = ["json_schema": ["schema": ["required": ["a"], "type": "object"], "name": "p"], "type": "json_schema"]
        var a = Self.base, b = Self.base
        a.config.responseFormat = schema
        b.config.responseFormat = sameSchema
        #expect(Self.key(a) == Self.key(b))
    }

    @Test func filesAreKeyedByContentNotByName() {
        var uploaded = Self.base, local = Self.base, elsewhere = Self.base
        uploaded.parts.append(.fileRef(FileReference(uri: "files/abc", mimeType: "application/pdf")))
        local.parts.append(.filePlaceholder(FilePlaceholder(path: "/tmp/a.pdf")))
        elsewhere.parts.append(.fileRef(FileReference(uri: "files/xyz", mimeType: "application/pdf")))
        let digest = String(repeating: "a", count: 64)
        #expect(Self.key(uploaded, files: [2: digest]) == Self.key(local, files: [2: digest]))
        #expect(Self.key(uploaded, files: [2: digest]) == Self.key(elsewhere, files: [2: digest]))
        #expect(Self.key(uploaded, files: [2: digest]) != Self.key(uploaded, files: [2: String(repeating: "b", count: 64)]))
        // Without a digest, a provider's reference is keyed by its uri.
        #expect(Self.key(uploaded) != Self.key(elsewhere))
    }

    // MARK: The in-memory store

    final class WallClock: Sendable {
        let time = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        func advance(_ seconds: Double) { time.withLock { $0 = $0.addingTimeInterval(seconds) } }
        var now: @Sendable () -> Date { { self.time.withLock { $0 } } }
    }

    static func answer(_ text: String) -> GenerationResponse {
        GenerationResponse(text: text, model: "m", usage: Usage(promptTokens: 3, completionTokens: 2), parsed: ["t": .string(text)])
    }

    @Test func anAnswerOlderThanTheTTLIsAMiss() {
        let clock = WallClock()
        let cache = InMemoryResponseCache(ttl: .seconds(60), now: clock.now)
        let key = Self.key()
        cache.store(Self.answer("x"), for: key)
        clock.advance(59)
        #expect(cache.answer(for: key) == Self.answer("x"))
        clock.advance(1)
        #expect(cache.answer(for: key) == nil)
    }

    @Test func theSizeBoundDropsTheOldestFirst() {
        let keys = (0..<4).map { Self.key(provider: "p\($0)") }
        let size = keys[0].digest.utf8.count + CachedAnswerSize.of(Self.answer("0"))
        let cache = InMemoryResponseCache(maxBytes: 3 * size)
        for (i, key) in keys.enumerated() { cache.store(Self.answer("\(i)"), for: key) }
        #expect(cache.answer(for: keys[0]) == nil, "the oldest went first")
        #expect(keys[1...].allSatisfy { cache.answer(for: $0) != nil })
        #expect(cache.statistics.entries == 3 && cache.statistics.bytes <= 3 * size)
        // Storing a key again makes it the newest.
        cache.store(Self.answer("1"), for: keys[1])
        cache.store(Self.answer("0"), for: keys[0])
        #expect(cache.answer(for: keys[2]) == nil && cache.answer(for: keys[1]) != nil)
    }

    // MARK: Through the engine

    static func engine(_ provider: any GenerationCapability, cache: any ResponseCache, maxRepairs: Int = 1) throws -> PipelineEngine {
        var configuration = EngineConfiguration(clock: ManualClock(), retryPolicy: .none)
        configuration.responseCache = cache
        configuration.maxRepairs = maxRepairs
        return try PipelineEngine(provider: provider, configuration: configuration)
    }

    @Test func aSecondRunIsAnsweredFromTheCacheWithNoRequestAndNoCost() async throws {
        let provider = RecordingProvider(clock: ManualClock())
        let cache = InMemoryResponseCache()
        let first = try #require(await Self.engine(provider, cache: cache).executeWithFallback(command(prompts: ["a", "b"])).success)
        #expect(provider.recorder.snapshot.generateCalls == 2)
        #expect(first.telemetry.calls.map(\.responseCache) == [.stored, .stored])
        // Another engine (another run) over the same store.
        let seen = Mutex<[String]>([])
        let outcome = await (try Self.engine(provider, cache: cache)).run(command(prompts: ["a", "b"]), observer: { event in seen.withLock { $0.append(event.type) } })
        let second = try #require(outcome.result.success)
        #expect(provider.recorder.snapshot.generateCalls == 2, "no request the second time")
        #expect(second.responses.map(\.text) == first.responses.map(\.text))
        #expect(second.telemetry.calls.map(\.responseCache) == [.hit, .hit])
        #expect(second.telemetry.calls.map(\.attempts) == [0, 0])
        #expect(second.usage == .zero && second.responses.allSatisfy { $0.usage == .zero })
        let types = seen.withLock { $0 }
        #expect(types.filter { $0 == "response_cache_hit" }.count == 2)
        #expect(!types.contains("attempt_started"))
    }

    @Test func failedAndInvalidAnswersAreNotStored() async throws {
        var failing = RecordingProvider(clock: ManualClock())
        failing.failing = ["m"]
        let cache = InMemoryResponseCache()
        let failed = await (try Self.engine(failing, cache: cache)).run(command())
        #expect(failed.result.failure != nil)
        #expect(failed.telemetry.calls.first?.responseCache == .miss)
        #expect(cache.statistics.entries == 0)

        // "echo: hello" is not the JSON object the format asks for: invalid_output, not stored.
        let plain = RecordingProvider(clock: ManualClock())
        let json = PlannedCommand(id: "j", plan: ExecutionPlan(call: APICall(model: "m", parts: [.text("hello")], config: GenerationConfig(responseFormat: ["type": "json_object"]))))
        for _ in 0..<2 {
            let outcome = await (try Self.engine(plain, cache: cache, maxRepairs: 0)).run(json)
            #expect(outcome.result.failure?.kind == .invalidOutput)
        }
        #expect(plain.recorder.snapshot.generateCalls == 2, "the invalid answer was asked for again")
        #expect(cache.statistics.entries == 0)
    }

    /// A provider whose first answer waits for a latch, so identical calls pile up behind it.
    final class GatedProvider: GenerationCapability {
        let gate = Latch()
        let calls = Atomic<Int>(0)
        var providerName: String { "gated" }
        func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
            if calls.add(1, ordering: .relaxed).newValue == 1 { _ = await gate.wait() }
            return GenerationResponse(text: "answer", model: request.model, usage: Usage(promptTokens: 1, completionTokens: 1))
        }
    }

    @Test func identicalCallsInFlightShareOneRequest() async throws {
        let provider = GatedProvider()
        let cache = InMemoryResponseCache()
        let unit = ResponseCacheUnit(cache: cache)
        let engine = PipelineEngine(provider: provider, stages: [GenerateStage(calls: CallChain([unit], terminal: ProviderCall.run)), TelemetryStage()])
        let key = ResponseCacheKey(provider: "gated", endpoint: "", request: GenerationRequest(model: "m", parts: [.text("same")]))
        let results = try await withThrowingTaskGroup(of: Telemetry.self) { group in
            for i in 0..<5 { group.addTask { try #require(await engine.execute(command("c\(i)", prompts: ["same"])).success).telemetry } }
            // Bounded: if the calls did not share the request, four never wait and this fails.
            var waiting = 0
            for _ in 0..<200_000 where waiting < 4 {
                waiting = await unit.waiting(for: key)
                await Task.yield()
            }
            #expect(waiting == 4)
            provider.gate.open()
            var all: [Telemetry] = []
            for try await telemetry in group { all.append(telemetry) }
            return all
        }
        #expect(provider.calls.load(ordering: .relaxed) == 1)
        #expect(results.compactMap(\.calls.first?.responseCache).sorted { $0.rawValue < $1.rawValue } == [.hit, .hit, .hit, .hit, .stored])
    }

    /// The first call's answer is a refusal; the others answer.
    final class RefusingFirstProvider: GenerationCapability {
        let gate = Latch()
        let calls = Atomic<Int>(0)
        var providerName: String { "gated" }
        func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
            if calls.add(1, ordering: .relaxed).newValue == 1 {
                _ = await gate.wait()
                return GenerationResponse(text: "", model: request.model, finishReason: "content_filter", usage: Usage(promptTokens: 1, completionTokens: 0))
            }
            return GenerationResponse(text: "answer", model: request.model, usage: Usage(promptTokens: 1, completionTokens: 1))
        }
    }

    /// Twins in flight share only what the cache would keep: a refusal (not stored, it may not
    /// repeat) is not handed to the waiting twins; each asks for itself.
    @Test func aRefusalIsNotSharedWithTheTwinsInFlight() async throws {
        let provider = RefusingFirstProvider()
        let cache = InMemoryResponseCache()
        let unit = ResponseCacheUnit(cache: cache)
        let engine = PipelineEngine(provider: provider, stages: [GenerateStage(calls: CallChain([unit], terminal: ProviderCall.run)), TelemetryStage()])
        let key = ResponseCacheKey(provider: "gated", endpoint: "", request: GenerationRequest(model: "m", parts: [.text("same")]))
        let results = try await withThrowingTaskGroup(of: (String, Telemetry).self) { group in
            for i in 0..<4 {
                group.addTask {
                    let result = try #require(await engine.execute(command("c\(i)", prompts: ["same"])).success)
                    return (result.responses.first?.finishReason ?? "", result.telemetry)
                }
            }
            var waiting = 0
            for _ in 0..<200_000 where waiting < 3 {
                waiting = await unit.waiting(for: key)
                await Task.yield()
            }
            #expect(waiting == 3)
            provider.gate.open()
            var all: [(String, Telemetry)] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(provider.calls.load(ordering: .relaxed) == 4, "the refusal's twins each asked for themselves")
        #expect(results.filter { $0.0 == "content_filter" }.count == 1, "only the call that was refused has the refusal")
        #expect(results.compactMap(\.1.calls.first?.responseCache).sorted { $0.rawValue < $1.rawValue } == [.miss, .stored, .stored, .stored])
        #expect(cache.answer(for: key)?.text == "answer")
    }

    @Test func aLocalFileIsKeyedByItsContent() async throws {
        let dir = try temporaryDirectory(files: ["a.txt": "same bytes", "b.txt": "same bytes", "c.txt": "other bytes"])
        let provider = RecordingProvider(clock: ManualClock())
        let cache = InMemoryResponseCache()
        func run(_ name: String) async throws -> ResponseCacheStatus? {
            let command = command(prompts: ["read it"], shared: [.filePlaceholder(FilePlaceholder(path: dir.appendingPathComponent(name).path))])
            return try #require(await Self.engine(provider, cache: cache).executeWithFallback(command).success).telemetry.calls.first?.responseCache
        }
        #expect(try await run("a.txt") == .stored)
        #expect(try await run("b.txt") == .hit, "another name, the same content")
        #expect(try await run("c.txt") == .stored, "other content")
        try "changed".write(to: dir.appendingPathComponent("a.txt"), atomically: false, encoding: .utf8)
        #expect(try await run("a.txt") == .stored, "the file changed")
        #expect(provider.recorder.snapshot.generateCalls == 3)
    }
}

/// The size the in-memory store counts for an answer besides its key.
enum CachedAnswerSize {
    static func of(_ answer: GenerationResponse) -> Int {
        let cache = InMemoryResponseCache()
        let key = ResponseCacheKey(digest: "")
        cache.store(answer, for: key)
        return cache.statistics.bytes
    }
}
