import CSQLite
import CommandPipeline
import Foundation

/// What `pipeline cache stats|prune PATH` does to a cache file, beside any run using it.
extension SQLiteResponseCache {
    /// A cache file's contents.
    public struct Statistics: Sendable, Hashable {
        public var entries: Int
        /// The entries' bytes (key and answer), the figure `maxBytes` bounds.
        public var bytes: Int
        /// When the oldest and newest answers were stored (the first and last kept); nil when empty.
        public var oldest: Date?
        public var newest: Date?
        /// Answers given from the file by the runs that finished (each adds its count at its end).
        public var hits: Int
        /// The database file's size on disk (without its write-ahead log).
        public var fileBytes: Int
    }

    /// The statistics of the cache at `path` (which must exist).
    public static func statistics(path: String) throws(OpenError) -> Statistics {
        let db = try open(path, create: false)
        defer { sqlite3_close_v2(db) }
        return try statistics(db, path: path)
    }

    /// Removes answers stored more than `olderThan` ago, then the oldest until the entries take
    /// at most `maxBytes`, and gives the freed pages back to the file system. Returns how many
    /// went and what remains.
    public static func prune(path: String, olderThan: Duration? = nil, maxBytes: Int? = nil, now: Date = Date()) throws(OpenError) -> (removed: Int, remaining: Statistics) {
        let db = try open(path, create: false)
        defer { sqlite3_close_v2(db) }
        var removed = 0
        do throws(SQLiteSink.SQLiteError) {
            try SQLite.execute(db, "BEGIN IMMEDIATE", operation: "begin")
            do throws(SQLiteSink.SQLiteError) {
                if let olderThan {
                    let cutoff = now.timeIntervalSince1970 - olderThan.inSeconds
                    try SQLite.execute(db, "DELETE FROM response_cache WHERE created_at < \(cutoff)", operation: "removing old answers")
                    removed += Int(sqlite3_changes(db))
                }
                if let maxBytes { removed += try evict(db, toBytes: max(0, maxBytes)) }
                try SQLite.execute(db, "COMMIT", operation: "commit")
            } catch {
                _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
                throw error
            }
            _ = sqlite3_exec(db, "PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(PASSIVE)", nil, nil, nil)
        } catch {
            throw OpenError(message: "cannot prune the response cache '\(path)': \(error)")
        }
        return (removed, try statistics(db, path: path))
    }

    private static func statistics(_ db: OpaquePointer, path: String) throws(OpenError) -> Statistics {
        do throws(SQLiteSink.SQLiteError) {
            let row = try strings(
                db,
                "SELECT (SELECT count(*) FROM response_cache) || ' ' || bytes || ' ' || hits || ' ' || ifnull((SELECT created_at FROM response_cache ORDER BY id LIMIT 1), '-') || ' ' || ifnull((SELECT created_at FROM response_cache ORDER BY id DESC LIMIT 1), '-') FROM response_cache_meta WHERE id = 1"
            ).first ?? ""
            let fields = row.split(separator: " ").map(String.init)
            guard fields.count == 5 else { throw SQLiteSink.SQLiteError(operation: "read", code: SQLITE_CORRUPT, message: "the format record is missing") }
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            return Statistics(
                entries: Int(fields[0]) ?? 0, bytes: Int(fields[1]) ?? 0, oldest: Double(fields[3]).map(Date.init(timeIntervalSince1970:)),
                newest: Double(fields[4]).map(Date.init(timeIntervalSince1970:)), hits: Int(fields[2]) ?? 0, fileBytes: size)
        } catch {
            throw OpenError(message: "cannot read the response cache '\(path)': \(error)")
        }
    }
}
