import CommandPipeline
import CommandPipelineSQLite
import CommandPipelineTesting
import Foundation
import PipelineTestSupport
import Synchronization
import Testing

/// The SQLite response cache (`--response-cache`): answers survive the process, age out, stay
/// within their bound, and a file that is not a cache is refused with a message, never used.
@Suite struct SQLiteResponseCacheTests {
    static func key(_ n: Int) -> ResponseCacheKey {
        ResponseCacheKey(provider: "p", endpoint: "", request: GenerationRequest(model: "m", parts: [.text("prompt \(n)")]))
    }

    static func answer(_ n: Int, size: Int = 0) -> GenerationResponse {
        GenerationResponse(
            text: "answer \(n)" + String(repeating: "x", count: size), model: "m", finishReason: "stop",
            usage: Usage(promptTokens: 7, completionTokens: 3, cachedTokens: 2), parsed: ["n": .int(n), "ok": true])
    }

    static func path() throws -> String { try temporaryDirectory().appendingPathComponent("cache.db").path }

    final class WallClock: Sendable {
        let time = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        func advance(_ seconds: Double) { time.withLock { $0 = $0.addingTimeInterval(seconds) } }
        var now: @Sendable () -> Date { { self.time.withLock { $0 } } }
    }

    /// Past its bound in memory the store drops an answer instead of waiting for the writer (a
    /// wait would hold a thread of the caller's pool, and could outlast the run); an answer that
    /// replaces one held for its key is always taken.
    @Test func pastItsBoundTheStoreDropsAnAnswerRatherThanWait() async throws {
        let bound = SQLiteResponseCache.maxPendingBytes
        #expect(SQLiteResponseCache.admits(held: 0, replacing: false))
        #expect(SQLiteResponseCache.admits(held: bound, replacing: false))
        #expect(!SQLiteResponseCache.admits(held: bound + 1, replacing: false))
        #expect(SQLiteResponseCache.admits(held: bound + 1, replacing: true))
        let store = try SQLiteResponseCache(path: Self.path())
        store.store(Self.answer(1), for: Self.key(1))
        #expect(store.answer(for: Self.key(1)) == Self.answer(1))
        #expect(store.droppedAnswers == 0)
        try await store.finish()
    }

    @Test func answersOutliveTheStoreAndComeBackWhole() async throws {
        let path = try Self.path()
        let first = try SQLiteResponseCache(path: path)
        for n in 0..<10 { first.store(Self.answer(n), for: Self.key(n)) }
        // Pending answers are answered before they are written.
        #expect(first.answer(for: Self.key(3)) == Self.answer(3))
        try await first.finish()

        let second = try SQLiteResponseCache(path: path)
        for n in 0..<10 { #expect(second.answer(for: Self.key(n)) == Self.answer(n)) }
        #expect(second.answer(for: Self.key(10)) == nil)
        try await second.finish()
        let stats = try SQLiteResponseCache.statistics(path: path)
        #expect(stats.entries == 10)
        #expect(stats.hits == 11, "one hit before the write, ten after")
        #expect(stats.bytes > 10 * 64 && stats.oldest != nil && stats.newest != nil)
    }

    /// A tool-call answer comes back with its tool calls (arguments parsed or kept as text).
    @Test func aToolCallAnswerComesBackWithItsToolCalls() async throws {
        let path = try Self.path()
        let answer = GenerationResponse(
            text: "", model: "m", finishReason: "tool_calls", usage: Usage(promptTokens: 5, completionTokens: 9),
            toolCalls: [
                ToolCall(id: "call_1", name: "get_weather", arguments: ["city": "Paris", "days": .int(3)]),
                ToolCall(id: "call_2", name: "lookup", arguments: .null, unparsedArguments: "{not json"),
            ])
        let first = try SQLiteResponseCache(path: path)
        first.store(answer, for: Self.key(1))
        try await first.finish()
        let second = try SQLiteResponseCache(path: path)
        let back = second.answer(for: Self.key(1))
        #expect(back == answer)
        #expect(back?.toolCalls.map(\.name) == ["get_weather", "lookup"])
        try await second.finish()
        // An entry of the format before tool calls were kept is a miss.
        #expect(CachedAnswer.decode(Array(#"{"v":1,"text":"t","model":"m","finish_reason":"stop","usage":{}}"#.utf8)) == nil)
    }

    /// Lookups share one read snapshot: this store's own answers are seen as soon as they are
    /// written (the snapshot ends before each write), another store's after at most
    /// `snapshotLookups` lookups (or `snapshotAge`).
    @Test func lookupsShareASnapshotThatNeverHidesOwnAnswersForLong() async throws {
        let path = try Self.path()
        let own = try SQLiteResponseCache(path: path, maxBatch: 1)
        #expect(own.answer(for: Self.key(1)) == nil)   // a snapshot is open now
        own.store(Self.answer(1), for: Self.key(1))    // written at once (a group of one)
        #expect(own.answer(for: Self.key(1)) == Self.answer(1), "read back from the file")

        let other = try SQLiteResponseCache(path: path, maxBatch: 1)
        other.store(Self.answer(2), for: Self.key(2))
        try await other.finish()
        var seen = own.answer(for: Self.key(2)) != nil
        for _ in 0..<SQLiteResponseCache.snapshotLookups where !seen { seen = own.answer(for: Self.key(2)) != nil }
        #expect(seen, "another store's answer is seen within one snapshot's lookups")
        // Writing while a snapshot is open works, and the file holds both.
        own.store(Self.answer(3), for: Self.key(3))
        try await own.finish()
        #expect(try SQLiteResponseCache.statistics(path: path).entries == 3)
    }

    /// Answers are written by the store's own thread in groups while lookups go on: an answer
    /// is found at every moment — from memory while handed over, from the file once committed
    /// (a commit starts a new read snapshot) — and every one is in the file after `finish`.
    @Test func anAnswerIsFoundWhileTheWriterWritesItAndKeptAfterFinish() async throws {
        let path = try Self.path()
        let cache = try SQLiteResponseCache(path: path, maxBatch: 7)
        let count = 3_000
        var missed: [Int] = []
        for n in 0..<count {
            cache.store(Self.answer(n), for: Self.key(n))
            // The newest answers (handed over, being written, just committed) and some older ones.
            for m in Set([n, max(0, n - 1), max(0, n - 5), max(0, n - 20), n / 2]) where cache.answer(for: Self.key(m)) != Self.answer(m) { missed.append(m) }
        }
        #expect(missed.isEmpty, "answers not found while being written: \(missed.prefix(10))")
        try await cache.finish()
        let stats = try SQLiteResponseCache.statistics(path: path)
        #expect(stats.entries == count, "every answer handed over is in the file after finish")
        #expect(stats.hits == cache.hits && cache.hits > count)
        let reader = try SQLiteResponseCache(path: path)
        #expect((0..<count).allSatisfy { reader.answer(for: Self.key($0)) == Self.answer($0) })
        try await reader.finish()
    }

    /// A store dropped without `finish` stops its writer after the group in progress (the file
    /// usable meanwhile); answers it had handed over may be lost, never half-written. Each answer is
    /// checked by the lookup that found it: the dropped store's writer may still commit its
    /// group in progress, and a commit of another writer reaches each read connection's
    /// snapshot `snapshotAge` later at most, so a second lookup on another connection may
    /// miss what the first found (a CI run saw exactly that).
    @Test func aStoreDroppedWithoutFinishLeavesAUsableFile() async throws {
        let path = try Self.path()
        do {
            let cache = try SQLiteResponseCache(path: path)
            for n in 0..<100 { cache.store(Self.answer(n), for: Self.key(n)) }
        }
        let reader = try SQLiteResponseCache(path: path)
        let found = (0..<100).compactMap { n in reader.answer(for: Self.key(n)).map { (n, $0) } }
        #expect(found.allSatisfy { $0.1 == Self.answer($0.0) })
        reader.store(Self.answer(100), for: Self.key(100))
        try await reader.finish()
        let entries = try SQLiteResponseCache.statistics(path: path).entries
        #expect(entries > found.count && entries <= 101)
    }

    @Test func answersOlderThanTheTTLAreMisses() async throws {
        let path = try Self.path()
        let clock = WallClock()
        let writer = try SQLiteResponseCache(path: path, now: clock.now)
        writer.store(Self.answer(1), for: Self.key(1))
        try await writer.finish()
        clock.advance(3599)
        let fresh = try SQLiteResponseCache(path: path, ttl: .seconds(3600), now: clock.now)
        #expect(fresh.answer(for: Self.key(1)) != nil)
        clock.advance(1)
        #expect(fresh.answer(for: Self.key(1)) == nil)
        try await fresh.finish()
        // Without a TTL the same answer is used.
        let forever = try SQLiteResponseCache(path: path, now: clock.now)
        #expect(forever.answer(for: Self.key(1)) != nil)
        try await forever.finish()
    }

    @Test func theBoundEvictsTheOldestFirst() async throws {
        let path = try Self.path()
        let clock = WallClock()
        let size = 10_000
        let cache = try SQLiteResponseCache(path: path, maxBytes: 5 * size + 5 * 400, maxBatch: 1, now: clock.now)
        for n in 0..<20 {
            clock.advance(1)
            cache.store(Self.answer(n, size: size), for: Self.key(n))
        }
        try await cache.finish()
        let stats = try SQLiteResponseCache.statistics(path: path)
        #expect(stats.bytes <= 5 * size + 5 * 400)
        #expect(stats.entries == 5)
        let reader = try SQLiteResponseCache(path: path)
        #expect((15..<20).allSatisfy { reader.answer(for: Self.key($0)) != nil }, "the newest stay")
        #expect((0..<15).allSatisfy { reader.answer(for: Self.key($0)) == nil }, "the oldest went")
        try await reader.finish()
    }

    @Test func pruneRemovesOldAnswersThenTheOldestPastTheBound() async throws {
        let path = try Self.path()
        let clock = WallClock()
        let cache = try SQLiteResponseCache(path: path, now: clock.now)
        for n in 0..<10 {
            clock.advance(60)
            cache.store(Self.answer(n, size: 1000), for: Self.key(n))
        }
        try await cache.finish()
        // Stored at +60 … +600 s; at +600 s, older than 300 s are the first five (+60 … +240, and +300 is exactly 300).
        let (removed, remaining) = try SQLiteResponseCache.prune(path: path, olderThan: .seconds(300), now: clock.time.withLock { $0 })
        #expect(removed == 4 && remaining.entries == 6)
        let each = remaining.bytes / remaining.entries
        let (more, left) = try SQLiteResponseCache.prune(path: path, maxBytes: 2 * each + each / 2)
        #expect(more == 4 && left.entries == 2 && left.bytes <= 2 * each + each / 2)
        let reader = try SQLiteResponseCache(path: path)
        #expect(reader.answer(for: Self.key(9)) != nil && reader.answer(for: Self.key(8)) != nil && reader.answer(for: Self.key(7)) == nil)
        try await reader.finish()
    }

    @Test func aFileThatIsNotACacheIsRefusedAndLeftAlone() throws {
        let dir = try temporaryDirectory()
        let garbage = dir.appendingPathComponent("garbage.db")
        let bytes = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try bytes.write(to: garbage)
        #expect(throws: SQLiteResponseCache.OpenError.self) { try SQLiteResponseCache(path: garbage.path) }
        do { _ = try SQLiteResponseCache(path: garbage.path) } catch { #expect(error.message.contains("is not a response cache")) }
        #expect(try Data(contentsOf: garbage) == bytes, "nothing written to it")

        // Another program's SQLite database (here, the result sink's).
        let results = dir.appendingPathComponent("results.db").path
        let make = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); db.execute('CREATE TABLE results (id TEXT)'); db.commit()", results], timeout: 60)
        #expect(make.status == 0)
        do {
            _ = try SQLiteResponseCache(path: results)
            Issue.record("a foreign database was opened as a cache")
        } catch {
            #expect(error.message.contains("not a response cache") && error.message.contains("'results'"))
        }
        // A path with nothing there is not created by the statistics.
        let missing = dir.appendingPathComponent("missing.db").path
        #expect(throws: SQLiteResponseCache.OpenError.self) { try SQLiteResponseCache.statistics(path: missing) }
        #expect(!FileManager.default.fileExists(atPath: missing))
    }

    /// Code planted in a cache file (a trigger runs on every write) is refused with a usage
    /// error naming it; the file is left alone.
    @Test func aCacheWithAPlantedTriggerIsRefused() async throws {
        let path = try Self.path()
        let cache = try SQLiteResponseCache(path: path)
        cache.store(Self.answer(1, size: 20), for: Self.key(1))
        try await cache.finish()
        let plant = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [
            "python3", "-c",
            "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); db.execute('CREATE TRIGGER planted AFTER INSERT ON response_cache BEGIN DELETE FROM response_cache; END'); db.commit()",
            path,
        ], timeout: 60)
        #expect(plant.status == 0, "\(plant.output)")
        do {
            _ = try SQLiteResponseCache(path: path)
            Issue.record("a cache with a planted trigger was opened")
        } catch {
            #expect(error.message.contains("did not create") && error.message.contains("trigger planted"), "\(error.message)")
        }
    }

    @Test func aDamagedCacheIsRefusedNotACrash() async throws {
        let path = try Self.path()
        let cache = try SQLiteResponseCache(path: path)
        for n in 0..<200 { cache.store(Self.answer(n, size: 200), for: Self.key(n)) }
        try await cache.finish()
        // Overwrite the file's header and first pages.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.write(contentsOf: Data(repeating: 0xA5, count: 4096))
        try handle.close()
        do {
            let reopened = try SQLiteResponseCache(path: path)
            // If it opens at all, reading must not crash; a failed read is reported by finish.
            _ = reopened.answer(for: Self.key(1))
            try? await reopened.finish()
            Issue.record("a damaged header was not noticed")
        } catch {
            #expect(error.message.contains("not a response cache"))
        }
    }
}
