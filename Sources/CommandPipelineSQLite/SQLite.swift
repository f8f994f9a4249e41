import CSQLite

/// The few calls to the system's libsqlite3 both stores make the same way: opening a database
/// (WAL, `synchronous=NORMAL`, a busy timeout so several processes can share the file) and
/// running a statement without results.
enum SQLite {
    /// How long a statement waits for another connection's lock (another run on the same file)
    /// before it fails with `SQLITE_BUSY`.
    static let busyTimeoutMilliseconds: Int32 = 10_000

    /// Opens `path` (creating it when `create`); throws `SQLiteSink.SQLiteError` naming the path.
    static func open(_ path: String, create: Bool = true) throws(SQLiteSink.SQLiteError) -> OpaquePointer {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX
        let opened = sqlite3_open_v2(path, &handle, flags, nil)
        guard opened == SQLITE_OK, let db = handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close_v2(handle) }
            throw SQLiteSink.SQLiteError(operation: "open \(path)", code: opened, message: message)
        }
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
        return db
    }

    /// WAL mode (readers never block the writer, a killed process leaves a consistent file) with
    /// `synchronous=NORMAL` (no sync per commit; the log is synced at checkpoints).
    static func useWriteAheadLog(_ db: OpaquePointer) throws(SQLiteSink.SQLiteError) {
        try execute(db, "PRAGMA journal_mode=WAL", operation: "setting WAL mode")
        try execute(db, "PRAGMA synchronous=NORMAL", operation: "setting synchronous")
    }

    static func execute(_ db: OpaquePointer, _ sql: String, operation: String) throws(SQLiteSink.SQLiteError) {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &error)
        guard rc == SQLITE_OK else {
            let message = error.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(db))
            sqlite3_free(error)
            throw SQLiteSink.SQLiteError(operation: operation, code: rc, message: message)
        }
    }

    static func prepare(_ db: OpaquePointer, _ sql: String) throws(SQLiteSink.SQLiteError) -> OpaquePointer {
        var statement: OpaquePointer?
        let prepared = sqlite3_prepare_v2(db, sql, -1, &statement, nil)
        guard prepared == SQLITE_OK, let statement else {
            throw SQLiteSink.SQLiteError(operation: "prepare", code: prepared, message: String(cString: sqlite3_errmsg(db)))
        }
        return statement
    }

    /// SQLite copies a value bound with this destructor.
    static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}
