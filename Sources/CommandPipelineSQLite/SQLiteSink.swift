import CSQLite
import CommandPipeline
import Synchronization

/// Writes each result into a SQLite database, one row per run and command:
///
///     CREATE TABLE results (
///         run_id TEXT NOT NULL, command_id TEXT NOT NULL, command_index INTEGER NOT NULL,
///         status TEXT NOT NULL, idempotency_key TEXT NOT NULL, record TEXT NOT NULL,
///         written_at TEXT NOT NULL, PRIMARY KEY (run_id, command_id))
///
/// Rows are upserted on `(run_id, command_id)`: a re-run or a resumed run with the same run
/// id (`--run-id`) replaces a command's row instead of adding one. (Two commands with the same id
/// in one run share a row: the later result wins.) `record` is the result line's JSON, so
/// `json_extract(record, '$.usage.total_tokens')` works in queries.
///
/// Uses the system's libsqlite3. The database is in WAL mode with `synchronous=NORMAL`. Rows are
/// committed in groups: a transaction opens with the first row and commits after `maxBatch` rows
/// or `commitDelay`, whichever comes first (a commit per row would cap a run at a few thousand
/// rows a second); `finish` commits what is open, checkpoints the log into the database file and
/// closes it, so everything is durable when the run ends. A commit that fails in the background
/// is reported by the next `deliver` or by `finish`.
public final class SQLiteSink: ResultSink {
    public let name: String
    public let priority: Int
    public let path: String
    /// Rows per transaction at most.
    public let maxBatch: Int
    /// Longest a row waits for its commit.
    public let commitDelay: Duration
    private let clock: any PipelineClock
    private let filter: (@Sendable (ResultDelivery) -> Bool)?
    private let connection: Mutex<Connection?>

    /// What SQLite said, with the operation that failed.
    public struct SQLiteError: Error, CustomStringConvertible {
        public var operation: String
        public var code: Int32
        public var message: String
        public var description: String { "sqlite \(operation) failed (\(code)): \(message)" }
    }

    /// The open database and its prepared upsert (used under the mutex only).
    private final class Connection: @unchecked Sendable {
        let db: OpaquePointer
        let upsert: OpaquePointer
        /// Rows in the open transaction (0: none open), which transaction it is, and a commit
        /// that failed in the background, to report.
        var pendingRows = 0
        var transaction = 0
        var failedCommit: SQLiteError?
        init(db: OpaquePointer, upsert: OpaquePointer) {
            self.db = db
            self.upsert = upsert
        }
        func close() {
            sqlite3_finalize(upsert)
            sqlite3_close_v2(db)
        }
    }

    static let schema = """
        CREATE TABLE IF NOT EXISTS results (
            run_id TEXT NOT NULL,
            command_id TEXT NOT NULL,
            command_index INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
            idempotency_key TEXT NOT NULL,
            record TEXT NOT NULL,
            written_at TEXT NOT NULL,
            PRIMARY KEY (run_id, command_id)
        )
        """

    static let upsertSQL = """
        INSERT INTO results (run_id, command_id, command_index, status, idempotency_key, record, written_at)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        ON CONFLICT (run_id, command_id) DO UPDATE SET
            command_index = excluded.command_index, status = excluded.status,
            idempotency_key = excluded.idempotency_key, record = excluded.record, written_at = excluded.written_at
        """

    /// Opens (or creates) the database at `path` and its `results` table; throws `SQLiteError`.
    public init(
        path: String, priority: Int = 100, maxBatch: Int = 512, commitDelay: Duration = .milliseconds(200), clock: any PipelineClock = SystemClock(),
        filter: (@Sendable (ResultDelivery) -> Bool)? = nil
    ) throws {
        self.path = path
        self.priority = priority
        self.maxBatch = max(1, maxBatch)
        self.commitDelay = commitDelay
        self.clock = clock
        self.filter = filter
        name = "sqlite(\(path))"
        let db = try SQLite.open(path)
        do {
            // Another writer (a concurrent run on the same file) holds the lock for a moment at most.
            try SQLite.useWriteAheadLog(db)
            try Self.execute(db, Self.schema, operation: "creating the results table")
            connection = Mutex(Connection(db: db, upsert: try SQLite.prepare(db, Self.upsertSQL)))
        } catch {
            sqlite3_close_v2(db)
            throw error
        }
    }

    deinit {
        connection.withLock { c in
            c?.close()
            c = nil
        }
    }

    public func enabled(for delivery: ResultDelivery) -> Bool { filter?(delivery) ?? true }

    /// Rows delivered but not committed yet.
    public var uncommittedRows: Int { connection.withLock { $0?.pendingRows ?? 0 } }

    public func deliver(_ delivery: ResultDelivery) async throws {
        let opened = try connection.withLock { c throws(SQLiteError) -> Int? in
            guard let c else { throw SQLiteError(operation: "insert", code: SQLITE_MISUSE, message: "the database is closed") }
            if let failed = c.failedCommit {
                c.failedCommit = nil
                throw failed
            }
            var opened: Int?
            if c.pendingRows == 0 {
                try Self.execute(c.db, "BEGIN", operation: "begin")
                c.transaction += 1
                opened = c.transaction
            }
            do throws(SQLiteError) {
                try Self.upsert(delivery, into: c)
            } catch {
                // A transaction opened for this row alone is not left open.
                if c.pendingRows == 0 { _ = sqlite3_exec(c.db, "ROLLBACK", nil, nil, nil) }
                throw error
            }
            c.pendingRows += 1
            if c.pendingRows >= maxBatch { try Self.commit(c) }
            return opened
        }
        // A transaction opened: it commits by `commitDelay` at the latest, even if no row follows.
        if let transaction = opened {
            let delay = commitDelay, clock = self.clock
            Task { [weak self] in
                try? await clock.sleep(for: delay)
                self?.commitIfOpen(transaction)
            }
        }
    }

    private func commitIfOpen(_ transaction: Int) {
        connection.withLock { c in
            guard let c, c.pendingRows > 0, c.transaction == transaction else { return }
            do throws(SQLiteError) { try Self.commit(c) } catch { c.failedCommit = error }
        }
    }

    private static func commit(_ c: Connection) throws(SQLiteError) {
        let rows = c.pendingRows
        c.pendingRows = 0
        do throws(SQLiteError) {
            try execute(c.db, "COMMIT", operation: "commit")
        } catch {
            _ = sqlite3_exec(c.db, "ROLLBACK", nil, nil, nil)
            throw SQLiteError(operation: "commit of \(rows) row\(rows == 1 ? "" : "s")", code: error.code, message: error.message)
        }
    }

    private static func upsert(_ delivery: ResultDelivery, into c: Connection) throws(SQLiteError) {
        do {  // (one scope for the statement's reset)
            let statement = c.upsert
            defer {
                sqlite3_reset(statement)
                sqlite3_clear_bindings(statement)
            }
            let transient = SQLite.transient
            var rc = sqlite3_bind_text(statement, 1, delivery.runID, -1, transient)
            if rc == SQLITE_OK { rc = sqlite3_bind_text(statement, 2, delivery.commandID, -1, transient) }
            if rc == SQLITE_OK { rc = sqlite3_bind_int64(statement, 3, Int64(delivery.index)) }
            if rc == SQLITE_OK { rc = sqlite3_bind_text(statement, 4, delivery.status.rawValue, -1, transient) }
            if rc == SQLITE_OK { rc = sqlite3_bind_text(statement, 5, delivery.idempotencyKey, -1, transient) }
            if rc == SQLITE_OK {
                // Bound with its length (one copy, no terminator needed).
                rc = delivery.record.isEmpty
                    ? sqlite3_bind_text(statement, 6, "", 0, transient)
                    : delivery.record.withUnsafeBufferPointer { bytes in
                        bytes.withMemoryRebound(to: CChar.self) { chars in
                            sqlite3_bind_text(statement, 6, chars.baseAddress, Int32(clamping: chars.count), transient)
                        }
                    }
            }
            guard rc == SQLITE_OK else { throw SQLiteError(operation: "bind", code: rc, message: String(cString: sqlite3_errmsg(c.db))) }
            let stepped = sqlite3_step(statement)
            guard stepped == SQLITE_DONE else {
                throw SQLiteError(operation: "upsert of '\(delivery.commandID)'", code: stepped, message: String(cString: sqlite3_errmsg(c.db)))
            }
        }
    }

    /// Commits what is open, checkpoints the write-ahead log into the database file and closes the database.
    public func finish() async throws {
        try connection.withLock { c throws(SQLiteError) in
            guard let open = c else { return }
            defer {
                open.close()
                c = nil
            }
            if let failed = open.failedCommit { throw failed }
            if open.pendingRows > 0 { try Self.commit(open) }
            try Self.execute(open.db, "PRAGMA wal_checkpoint(TRUNCATE)", operation: "checkpoint")
        }
    }

    private static func execute(_ db: OpaquePointer, _ sql: String, operation: String) throws(SQLiteError) {
        try SQLite.execute(db, sql, operation: operation)
    }
}
