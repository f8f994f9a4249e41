import CSQLite
import Foundation
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
}
