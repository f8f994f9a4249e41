import CSQLite
import CommandPipeline
import Dispatch
import Foundation
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
/// `json_extract(record, '$.usage.total_tokens')` works in queries; `idempotency_key` is
/// `run_id || '/' || command_id` (`ResultDelivery.idempotencyKey`), made by SQLite in the statement.
///
/// Uses the system's libsqlite3. The database is in WAL mode with `synchronous=NORMAL`.
///
/// **Off the output path** (issue 28). `deliver` copies the delivery into the sink's buffer
/// (`BufferedSinkWriter`, bounded in the bytes the held rows keep allocated: `maxBufferedBytes`)
/// and returns; a writer thread of the sink's own takes up to `maxBatch` held rows and writes
/// them as **one transaction**: `BEGIN`, a prepared 64-row upsert reused for each full group of
/// 64 and a single-row one for the rest, `COMMIT`, each row's bytes bound where the buffer holds
/// them (no string is made per row). While it writes one batch the next gathers, so the batches
/// grow with the rate (no timer, no per-row commit). A row beyond the bound is dropped and counted
/// (`deliver` throws, so the dispatcher reports it).
///
/// **Faults.** A lock another connection holds longer than the busy timeout is waited out: the
/// batch stays held (counted against the bound) and is written again after a pause that doubles
/// up to 2 s. A batch that fails otherwise (a full disk, a read-only file, a row a trigger
/// refuses) is rolled back; its rows are counted as not written, the failure is reported when it
/// happens through `report` (with the batch's row count and its first and last command ids), and
/// `finish` sums it up.
///
/// **End.** `finish` waits until the buffer is written, checkpoints the log into the database
/// file and closes it, so everything is durable when the run ends; it throws when any row was
/// dropped or not written. If it is cancelled (abandoned at its timeout), the writer stops after
/// the batch in progress and what it still holds is never written.
public final class SQLiteSink: ResultSink {
    public let name: String
    public let priority: Int
    public let path: String
    /// Rows per transaction at most.
    public let maxBatch: Int
    /// Bytes the held rows keep allocated at most while the writer is behind.
    public let maxBufferedBytes: Int
    private let filter: (@Sendable (ResultDelivery) -> Bool)?
    private let writer: BufferedSinkWriter
    private let shared: Shared
    /// Batches written again because another connection held the database's lock past the
    /// busy timeout (for tests).
    package var lockRetries: Int { shared.lockRetries.load(ordering: .relaxed) }
    /// Sets how long SQLite waits for another connection's lock before the writer's batch fails
    /// (and is tried again): tests make it short so a held lock is seen at once.
    package func setBusyTimeout(milliseconds: Int32) { sqlite3_busy_timeout(shared.db, milliseconds) }
    /// Bytes the buffer holds now (for tests).
    package var bufferedBytes: Int { writer.bufferedBytes }

    /// What SQLite said, with the operation that failed.
    public struct SQLiteError: Error, Sendable, CustomStringConvertible {
        public var operation: String
        public var code: Int32
        public var message: String
        public var description: String { "sqlite \(operation) failed (\(code)): \(message)" }
    }

    /// What the sink could not write (thrown by `finish`, and by `deliver` for a dropped row).
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Counts so far: rows written (committed), dropped at the buffer's bound, in batches that
    /// failed, and still held.
    public struct Counts: Sendable, Hashable {
        public var written = 0
        public var dropped = 0
        public var failed = 0
        public var held = 0
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

    /// Rows per statement in a batch's full groups: a prepared `rowsPerStatement`-row `VALUES`
    /// list took 12% fewer instructions a row than a prepared single-row statement reused
    /// (`Benchmarks/README.md`, "Result sinks, round 3"); what is left of a batch goes row by row.
    /// (Within one statement SQLite applies the rows in order: a command twice, the later wins.)
    static let rowsPerStatement = 64

    /// Parameters a row: run id, command id, index, status, record (the idempotency key is
    /// `run id || '/' || command id`, made in the statement).
    static let parametersPerRow = 5

    /// The upsert of `rows` rows, five parameters a row (`?1`…`?5` for the first).
    static func upsertSQL(rows: Int) -> String {
        let values = (0..<rows).map { r in
            let p = r * parametersPerRow
            return "(?\(p + 1), ?\(p + 2), ?\(p + 3), ?\(p + 4), ?\(p + 1) || '/' || ?\(p + 2), ?\(p + 5), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        }
        return """
            INSERT INTO results (run_id, command_id, command_index, status, idempotency_key, record, written_at)
            VALUES \(values.joined(separator: ", "))
            ON CONFLICT (run_id, command_id) DO UPDATE SET
                command_index = excluded.command_index, status = excluded.status,
                idempotency_key = excluded.idempotency_key, record = excluded.record, written_at = excluded.written_at
            """
    }

    /// Opens (or creates) the database at `path` and its `results` table, now (a bad path fails
    /// here, before any result), and starts the writer thread; throws `SQLiteError`.
    /// - Parameters:
    ///   - maxBatch: rows per transaction at most (1 to 100,000).
    ///   - maxBufferedBytes: bytes the held rows keep allocated at most (at least 64 KiB); beyond it rows are dropped and counted.
    ///   - report: hears a batch that failed when it fails (the CLI writes it to stderr); `finish` sums failures up either way.
    public init(
        path: String, priority: Int = 100, maxBatch: Int = 1_000, maxBufferedBytes: Int = 256 << 20,
        report: (@Sendable (String) -> Void)? = nil, filter: (@Sendable (ResultDelivery) -> Bool)? = nil
    ) throws {
        self.path = path
        self.priority = priority
        self.maxBatch = min(max(1, maxBatch), 100_000)
        self.maxBufferedBytes = max(1 << 16, maxBufferedBytes)
        self.filter = filter
        name = "sqlite(\(path))"
        let db = try SQLite.open(path)
        let upsert: OpaquePointer, upsertGroup: OpaquePointer
        do {
            // Another writer (a concurrent run on the same file) holds the lock for a moment at most.
            try SQLite.useWriteAheadLog(db)
            try SQLite.execute(db, Self.schema, operation: "creating the results table")
            upsert = try SQLite.prepare(db, Self.upsertSQL(rows: 1))
            do throws(SQLiteError) {
                upsertGroup = try SQLite.prepare(db, Self.upsertSQL(rows: Self.rowsPerStatement))
            } catch {
                sqlite3_finalize(upsert)
                throw error
            }
        } catch {
            sqlite3_close_v2(db)
            throw error
        }
        shared = Shared(db: db)
        writer = BufferedSinkWriter(maxBatch: self.maxBatch, maxBufferedBytes: self.maxBufferedBytes)
        writer.start(
            name: "pipeline-sqlite-sink", BatchWriter(db: db, upsert: upsert, upsertGroup: upsertGroup, shared: shared, report: report))
    }

    deinit { writer.abandon() }

    public func enabled(for delivery: ResultDelivery) -> Bool { filter?(delivery) ?? true }

    public var counts: Counts {
        let c = writer.counts
        return Counts(written: c.written, dropped: c.dropped, failed: c.failed, held: c.held)
    }

    /// Copies the delivery into the sink's bounded buffer (never waits for the database).
    public func deliver(_ delivery: ResultDelivery) async throws {
        switch writer.append(delivery) {
        case .accepted: return
        case .closed: throw Failure(message: "row not written: the sink has finished")
        case .dropped(let first):
            throw Failure(
                message: first
                    ? "row not written: the sink's \(BufferedSinkWriter.amount(maxBufferedBytes)) buffer is full (the database does not keep up); further drops are counted at the end"
                    : "row not written: the sink's buffer is full")
        }
    }

    /// `deliver` only appends to the sink's bounded buffer; its own thread writes to the database.
    public var deliversWithoutWaiting: Bool { true }

    /// Waits until the buffer is written, checkpoints the write-ahead log into the database
    /// file and closes the database; throws when a row was dropped or not written.
    public func finish() async throws {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in writer.finish(done) }
        } onCancel: {
            writer.abandon()
        }
        let c = counts
        let failure = shared.firstFailure.withLock { $0 }
        guard c.dropped + c.failed + c.held == 0, failure == nil else {
            var parts: [String] = []
            if c.held > 0 { parts.append("\(c.held) never written") }
            if c.dropped > 0 { parts.append("\(c.dropped) dropped at the \(BufferedSinkWriter.amount(maxBufferedBytes)) buffer bound (the database did not keep up)") }
            if c.failed > 0 { parts.append("\(c.failed) not written (the database refused them)") }
            let reason = failure.map { ": \($0)" } ?? ""
            throw Failure(message: "\(c.written) rows written\(parts.isEmpty ? "" : "; " + parts.joined(separator: ", "))\(reason)")
        }
    }
}

extension SQLiteSink {
    /// What the sink and its writer thread share: the database handle (for `setBusyTimeout`),
    /// the lock retries, and the run's first failure.
    final class Shared: @unchecked Sendable {
        // @unchecked: `db` is a handle set once; the rest are synchronized.
        let db: OpaquePointer
        let lockRetries = Atomic<Int>(0)
        let firstFailure = Mutex<SQLiteError?>(nil)
        init(db: OpaquePointer) { self.db = db }
    }

    /// The writer thread's side: the open database and its prepared upserts (one row;
    /// `rowsPerStatement` rows), used by that thread alone.
    final class BatchWriter: SinkBatchWriter {
        let db: OpaquePointer
        let upsert: OpaquePointer
        let upsertGroup: OpaquePointer
        let shared: Shared
        let report: (@Sendable (String) -> Void)?
        /// The next pause after a batch met another connection's lock: 50 ms doubling to 2 s.
        private var lockPause = 0.05

        init(db: OpaquePointer, upsert: OpaquePointer, upsertGroup: OpaquePointer, shared: Shared, report: (@Sendable (String) -> Void)?) {
            self.db = db
            self.upsert = upsert
            self.upsertGroup = upsertGroup
            self.shared = shared
            self.report = report
        }

        func write(_ batch: ArraySlice<SinkRow>) -> BufferedSinkWriter.Step {
            guard let failure = transaction(batch) else {
                lockPause = 0.05
                return .settled(written: batch.count, failed: 0)
            }
            // Another connection holding the lock past the busy timeout (a backup, an
            // operator's `sqlite3` shell) is transient and no row's fault: the batch stays
            // held, counted against the bound, and is written again after a pause that
            // doubles up to 2 s, until it is written or the sink is abandoned.
            if Self.isLockContention(failure.code) {
                shared.lockRetries.add(1, ordering: .relaxed)
                defer { lockPause = min(lockPause * 2, 2) }
                return .retry(afterSeconds: lockPause)
            }
            lockPause = 0.05
            // One row at fault (a trigger, a CHECK) must not cost the batch's others: the batch
            // goes again one row per transaction, and only the rows refused then are lost (a
            // fault that is no row's, such as a full disk, refuses each of them alike). The
            // upsert makes a row written twice one row, so a lock met on the way retries the batch.
            var refused: [(id: String, failure: SQLiteError)] = []
            if batch.count == 1 {
                refused = [(batch.first!.commandIDText, failure)]
            } else {
                for i in batch.indices {
                    guard let rowFailure = transaction(batch[i..<(i + 1)]) else { continue }
                    if Self.isLockContention(rowFailure.code) {
                        shared.lockRetries.add(1, ordering: .relaxed)
                        return .retry(afterSeconds: lockPause)
                    }
                    refused.append((batch[i].commandIDText, rowFailure))
                }
            }
            guard let first = refused.first else { return .settled(written: batch.count, failed: 0) }
            let rows = batch.count
            let range = rows == 1 ? "'\(batch.first!.commandIDText)'" : "'\(batch.first!.commandIDText)' to '\(batch.last!.commandIDText)'"
            let named = refused.prefix(3).map { "'\($0.id)'" }.joined(separator: ", ") + (refused.count > 3 ? ", …" : "")
            let error = SQLiteError(
                operation: "\(first.failure.operation) (a batch of \(rows) row\(rows == 1 ? "" : "s"), \(range): \(refused.count) not written, \(named))",
                code: first.failure.code, message: first.failure.message)
            shared.firstFailure.withLock { if $0 == nil { $0 = error } }
            report?("\(error)")
            return .settled(written: rows - refused.count, failed: refused.count)
        }

        func close(drained: Bool) {
            // A finished run is made durable; an abandoned one is only closed.
            if drained {
                do throws(SQLiteError) {
                    try SQLite.execute(db, "PRAGMA wal_checkpoint(TRUNCATE)", operation: "checkpoint")
                } catch {
                    shared.firstFailure.withLock { if $0 == nil { $0 = error } }
                    report?("\(error)")
                }
            }
            sqlite3_finalize(upsert)
            sqlite3_finalize(upsertGroup)
            sqlite3_close_v2(db)
        }

        /// `SQLITE_BUSY` or `SQLITE_LOCKED`, extended codes included.
        static func isLockContention(_ code: Int32) -> Bool { code & 0xff == SQLITE_BUSY || code & 0xff == SQLITE_LOCKED }

        /// Upserts `batch` in one transaction; on a failure the transaction is rolled back and
        /// the failure returned (no row of the batch is written).
        private func transaction(_ batch: ArraySlice<SinkRow>) -> SQLiteError? {
            do throws(SQLiteError) {
                try SQLite.execute(db, "BEGIN", operation: "begin")
                do throws(SQLiteError) {
                    let group = SQLiteSink.rowsPerStatement
                    var start = batch.startIndex
                    while batch.endIndex - start >= group {
                        try upsert(batch[start..<(start + group)], with: upsertGroup)
                        start += group
                    }
                    for i in start..<batch.endIndex { try upsert(batch[i...i], with: upsert) }
                    try SQLite.execute(db, "COMMIT", operation: "commit")
                } catch {
                    _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
                    throw error
                }
                return nil
            } catch {
                return error
            }
        }

        private static let succeeded: StaticString = "succeeded"
        private static let failed: StaticString = "failed"

        /// Runs `statement` (prepared for exactly `rows.count` rows) with `rows` bound: each
        /// value's bytes where the row holds them (`SQLITE_STATIC`: the rows outlive the step;
        /// every parameter is bound again before the statement's next step).
        private func upsert(_ rows: ArraySlice<SinkRow>, with statement: OpaquePointer) throws(SQLiteError) {
            defer { sqlite3_reset(statement) }
            var rc = SQLITE_OK
            var p: Int32 = 0
            for row in rows where rc == SQLITE_OK {
                rc = Self.bind(row.runID, statement, p + 1)
                if rc == SQLITE_OK { rc = Self.bind(row.commandID, statement, p + 2) }
                if rc == SQLITE_OK { rc = sqlite3_bind_int64(statement, p + 3, Int64(row.index)) }
                if rc == SQLITE_OK {
                    let status = row.status == .succeeded ? Self.succeeded : Self.failed
                    rc = Self.bind(UnsafeRawBufferPointer(start: status.utf8Start, count: status.utf8CodeUnitCount), statement, p + 4)
                }
                if rc == SQLITE_OK { rc = Self.bind(row.record, statement, p + 5) }
                p += Int32(SQLiteSink.parametersPerRow)
            }
            guard rc == SQLITE_OK else { throw SQLiteError(operation: "bind", code: rc, message: String(cString: sqlite3_errmsg(db))) }
            let stepped = sqlite3_step(statement)
            guard stepped == SQLITE_DONE else {
                let what = rows.count == 1 ? "'\(rows.first!.commandIDText)'" : "\(rows.count) rows from '\(rows.first!.commandIDText)'"
                throw SQLiteError(operation: "upsert of \(what)", code: stepped, message: String(cString: sqlite3_errmsg(db)))
            }
        }

        /// Binds `bytes` as text, not copied (`SQLITE_STATIC`); empty bytes are the empty text, never NULL.
        private static func bind(_ bytes: UnsafeRawBufferPointer, _ statement: OpaquePointer, _ index: Int32) -> Int32 {
            guard bytes.count <= Int(Int32.max) else { return SQLITE_TOOBIG }
            guard let base = bytes.baseAddress else { return sqlite3_bind_text(statement, index, "", 0, SQLite.transient) }
            return sqlite3_bind_text(statement, index, base.assumingMemoryBound(to: CChar.self), Int32(bytes.count), nil)
        }
    }
}
