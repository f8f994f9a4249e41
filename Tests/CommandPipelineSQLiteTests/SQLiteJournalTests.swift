import CSQLite
import Foundation
import Testing

@testable import CommandPipelineSQLite

/// How the sink's and the response cache's connections journal (`SQLite.configureJournals`):
/// WAL, `synchronous=NORMAL`, and temporary files — the statement journal an upsert with a
/// trigger writes for every row — in memory (on disk they were 1.15 million `pwrite` calls for
/// 100,000 answers stored in the response cache).
struct SQLiteJournalTests {
    static func pragma(_ db: OpaquePointer, _ name: String) throws -> String {
        let statement = try SQLite.prepare(db, "PRAGMA \(name)")
        defer { sqlite3_finalize(statement) }
        #expect(sqlite3_step(statement) == SQLITE_ROW)
        return String(cString: try #require(sqlite3_column_text(statement, 0)))
    }

    @Test func aConnectionJournalsToTheLogAndKeepsTemporaryFilesInMemory() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("journals-\(UUID().uuidString).db").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let db = try SQLite.open(path)
        defer { sqlite3_close_v2(db) }
        try SQLite.configureJournals(db)
        #expect(try Self.pragma(db, "journal_mode") == "wal")
        #expect(try Self.pragma(db, "synchronous") == "1")  // NORMAL
        #expect(try Self.pragma(db, "temp_store") == "2")  // MEMORY
    }
}
