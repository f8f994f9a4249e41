import CSQLite
import CommandPipeline
import Foundation
import Synchronization
import Testing

@testable import CommandPipelineSQLite

/// The response cache's writer connection keeps SQLite's temporary files — the statement
/// journal each upsert-with-trigger writes — in memory (on disk they were 1.15 million `pwrite`
/// calls for 100,000 answers); the other connections keep SQLite's default, so `cache prune`'s
/// one large DELETE spills its journal to disk instead of memory.
struct SQLiteResponseCacheWriterTests {
    @Test func theWriterKeepsItsStatementJournalsInMemory() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("writer-\(UUID().uuidString).db").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let cache = try SQLiteResponseCache(path: path)
        #expect(cache.writerSetting("temp_store") == "2")  // MEMORY
        #expect(cache.writerSetting("journal_mode") == "wal")
        try await cache.finish()
        let db = try SQLiteResponseCache.open(path, create: false)
        defer { sqlite3_close_v2(db) }
        let statement = try SQLite.prepare(db, "PRAGMA temp_store")
        defer { sqlite3_finalize(statement) }
        #expect(sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_int(statement, 0) == 0, "other connections keep the default")
    }

    /// Lookups hold a read snapshot at almost every instant, and a checkpoint cannot copy what
    /// a snapshot older than it may read: SQLite's passive checkpoint never emptied the log, which
    /// grew for the whole run (163 MB for a 10 MB cache). With lookups going on the whole time,
    /// the log stays near its bound (here 32 pages; unbounded, these 4,000 answers made ~7,000).
    @Test func theLogStaysBoundedWhileLookupsHoldSnapshots() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString).db").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let cache = try SQLiteResponseCache(path: path, maxBatch: 8)
        cache.logBoundPages = 32
        final class Flag: Sendable { let raised = Atomic<Bool>(false) }
        let stop = Flag()
        let looker = Thread {
            var n = 0
            while !stop.raised.load(ordering: .relaxed) {
                _ = cache.answer(for: "missing-\(n)")
                n &+= 1
            }
        }
        looker.start()
        for n in 0..<4_000 { cache.store(SQLiteResponseCacheTests.answer(n, size: 600), for: "key-\(n)") }
        // Until every answer is written (bounded: a minute at most).
        let deadline = ContinuousClock.now + .seconds(60)
        while cache.unwrittenAnswers > 0 && ContinuousClock.now < deadline { await Task.yield() }
        stop.raised.store(true, ordering: .relaxed)
        #expect(cache.unwrittenAnswers == 0)
        #expect(cache.largestLogPages > 32, "the bound was reached: the test measures something")
        #expect(cache.largestLogPages < 2_500, "the log grew to \(cache.largestLogPages) pages")
        try await cache.finish()
        let reopened = try SQLiteResponseCache(path: path)
        #expect(reopened.answer(for: "key-3999")?.text.hasPrefix("answer 3999") == true)
        try await reopened.finish()
    }
}
