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
/// `json_extract(record, '$.usage.total_tokens')` works in queries.
///
/// Uses the system's libsqlite3. The database is in WAL mode with `synchronous=NORMAL`.
///
/// **Off the output path** (issue 28, round 3). `deliver` only appends the delivery to an
/// in-memory buffer bounded in bytes (`maxBufferedBytes`; the record is the bytes the run already
/// holds, not a copy) and returns; a writer thread of the sink's own takes everything buffered,
/// up to `maxBatch` rows, and writes it as **one transaction**: `BEGIN`, a prepared 64-row
/// upsert reused for each full group of 64 and a single-row one for the rest, `COMMIT`. While it writes one batch the next gathers, so the batches grow
/// with the rate (no timer, no per-row commit). A row beyond the bound is dropped and counted
/// (`deliver` throws, so the dispatcher reports it).
///
/// **Faults.** A lock another connection holds longer than the busy timeout is waited out: the
/// batch stays held (counted against the bound) and is written again after a pause that doubles
/// up to 2 s. A batch that fails otherwise (a full disk, a read-only file, a row a trigger
/// refuses) is rolled back; its rows are counted as not written, and the failure is thrown
/// by the next `deliver` (so the dispatcher reports it) and summed up by `finish`.
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
    /// Bytes of records held at most while the writer is behind.
    public let maxBufferedBytes: Int
    private let filter: (@Sendable (ResultDelivery) -> Bool)?
    private let core: Core
    /// Batches written again because another connection held the database's lock past the
    /// busy timeout (for tests).
    package var lockRetries: Int { core.lockRetries }
    /// Sets how long SQLite waits for another connection's lock before the writer's batch fails
    /// (and is tried again): tests make it short so a held lock is seen at once.
    package func setBusyTimeout(milliseconds: Int32) { sqlite3_busy_timeout(core.connection.db, milliseconds) }

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

    /// The upsert of `rows` rows, six parameters a row (`?1`…`?6` for the first).
    static func upsertSQL(rows: Int) -> String {
        let values = (0..<rows).map { r in
            let p = r * 6
            return "(?\(p + 1), ?\(p + 2), ?\(p + 3), ?\(p + 4), ?\(p + 5), ?\(p + 6), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
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
    ///   - maxBufferedBytes: bytes of records held at most (at least 64 KiB); beyond it rows are dropped and counted.
    public init(
        path: String, priority: Int = 100, maxBatch: Int = 1_000, maxBufferedBytes: Int = 256 << 20,
        filter: (@Sendable (ResultDelivery) -> Bool)? = nil
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
        core = Core(connection: Connection(db: db, upsert: upsert, upsertGroup: upsertGroup), maxBatch: self.maxBatch, maxBufferedBytes: self.maxBufferedBytes)
        let core = self.core
        let thread = Thread { core.runWriter() }
        thread.name = "pipeline-sqlite-sink"
        thread.start()
    }

    deinit { core.abandon() }

    public func enabled(for delivery: ResultDelivery) -> Bool { filter?(delivery) ?? true }

    public var counts: Counts { core.counts }

    public func deliver(_ delivery: ResultDelivery) async throws {
        try core.append(delivery)
    }

    /// `deliver` only appends to the sink's bounded buffer; its own thread writes to the database.
    public var deliversWithoutWaiting: Bool { true }

    /// Waits until the buffer is written, checkpoints the write-ahead log into the database
    /// file and closes the database; throws when a row was dropped or not written.
    public func finish() async throws {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in core.finish(done) }
        } onCancel: {
            core.abandon()
        }
        let (c, failure) = core.outcome
        guard c.dropped + c.failed + c.held == 0, failure == nil else {
            var parts: [String] = []
            if c.held > 0 { parts.append("\(c.held) never written") }
            if c.dropped > 0 { parts.append("\(c.dropped) dropped at the \(Core.amount(maxBufferedBytes)) buffer bound (the database did not keep up)") }
            if c.failed > 0 { parts.append("\(c.failed) in batches that failed") }
            let reason = failure.map { ": \($0)" } ?? ""
            throw Failure(message: "\(c.written) rows written\(parts.isEmpty ? "" : "; " + parts.joined(separator: ", "))\(reason)")
        }
    }
}

extension SQLiteSink {
    /// The open database and its prepared upserts (one row; `rowsPerStatement` rows): used by the writer thread alone.
    final class Connection: @unchecked Sendable {
        let db: OpaquePointer
        let upsert: OpaquePointer
        let upsertGroup: OpaquePointer
        init(db: OpaquePointer, upsert: OpaquePointer, upsertGroup: OpaquePointer) {
            self.db = db
            self.upsert = upsert
            self.upsertGroup = upsertGroup
        }
        func close() {
            sqlite3_finalize(upsert)
            sqlite3_finalize(upsertGroup)
            sqlite3_close_v2(db)
        }
    }

    /// The buffer and the writer thread's loop: shared by the sink and its thread, so the
    /// thread does not keep the sink alive (dropping the sink abandons the writer).
    final class Core: Sendable {
        let connection: Connection
        let maxBatch: Int
        let maxBufferedBytes: Int
        private let state = Mutex(State())
        private let wake = DispatchSemaphore(value: 0)

        struct State {
            var rows: [ResultDelivery] = []
            /// Rows before `head` are taken by the writer (compacted now and then).
            var head = 0
            /// Bytes of the rows held, the batch the writer is writing included (the bound counts
            /// it until it is settled).
            var bytes = 0
            /// Rows of the batch the writer is writing (taken, not yet written or failed).
            var inFlight = 0
            /// Batches written again because another connection held the lock (for tests).
            var lockRetries = 0
            var counts = Counts()
            var writerWaiting = false
            var finishing = false
            var abandoned = false
            var writerDone = false
            var finished: CheckedContinuation<Void, Never>?
            /// A failed batch not reported yet (the next `deliver` throws it), and the first
            /// failure of the run (for `finish`).
            var unreported: SQLiteError?
            var firstFailure: SQLiteError?
            var droppedReported = false
        }

        init(connection: Connection, maxBatch: Int, maxBufferedBytes: Int) {
            self.connection = connection
            self.maxBatch = maxBatch
            self.maxBufferedBytes = maxBufferedBytes
        }

        /// `256 MiB`, `64 KiB`: a bound as messages say it.
        static func amount(_ bytes: Int) -> String { bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB" }

        static func size(_ d: ResultDelivery) -> Int { d.record.count.addingSaturating(d.runID.utf8.count).addingSaturating(d.commandID.utf8.count).addingSaturating(64) }

        var lockRetries: Int { state.withLock { $0.lockRetries } }

        var counts: Counts {
            state.withLock { s in
                var c = s.counts
                c.held = s.rows.count - s.head + s.inFlight
                return c
            }
        }

        var outcome: (Counts, SQLiteError?) { state.withLock { s in (Counts(written: s.counts.written, dropped: s.counts.dropped, failed: s.counts.failed, held: s.rows.count - s.head + s.inFlight), s.firstFailure) } }

        func append(_ delivery: ResultDelivery) throws {
            let size = Self.size(delivery)
            enum Outcome { case accepted(signal: Bool), closed, dropped(first: Bool), failed(SQLiteError, signal: Bool) }
            let outcome = state.withLock { s -> Outcome in
                guard !s.finishing, !s.abandoned else { return .closed }
                if let failure = s.unreported {
                    // This row is still taken; the batch that failed before it is what is reported.
                    s.unreported = nil
                    guard s.bytes.addingSaturating(size) <= maxBufferedBytes else {
                        s.counts.dropped += 1
                        return .failed(failure, signal: false)
                    }
                    s.rows.append(delivery)
                    s.bytes = s.bytes.addingSaturating(size)
                    let signal = s.writerWaiting
                    s.writerWaiting = false
                    return .failed(failure, signal: signal)
                }
                guard s.bytes.addingSaturating(size) <= maxBufferedBytes else {
                    s.counts.dropped += 1
                    let first = !s.droppedReported
                    s.droppedReported = true
                    return .dropped(first: first)
                }
                s.rows.append(delivery)
                s.bytes = s.bytes.addingSaturating(size)
                let signal = s.writerWaiting
                s.writerWaiting = false
                return .accepted(signal: signal)
            }
            switch outcome {
            case .accepted(let signal):
                if signal { wake.signal() }
            case .closed:
                throw Failure(message: "row not written: the sink has finished")
            case .dropped(let first):
                throw Failure(
                    message: first
                        ? "row not written: the sink's \(Self.amount(maxBufferedBytes)) buffer is full (the database does not keep up); further drops are counted at the end"
                        : "row not written: the sink's buffer is full")
            case .failed(let error, let signal):
                if signal { wake.signal() }
                throw error
            }
        }

        func finish(_ done: CheckedContinuation<Void, Never>) {
            let resumeNow = state.withLock { s -> Bool in
                s.finishing = true
                if s.writerDone { return true }
                s.finished = done
                return false
            }
            if resumeNow { done.resume() } else { wake.signal() }
        }

        /// Stops the writer after the batch in progress; what it still holds is never written.
        func abandon() {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.abandoned = true
                defer { s.finished = nil }
                return s.finished
            }
            wake.signal()
            waiter?.resume()
        }

        // MARK: The writer thread

        func runWriter() {
            while true {
                let next = state.withLock { s -> (batch: [ResultDelivery], stop: Bool) in
                    if s.abandoned { return ([], true) }
                    let held = s.rows.count - s.head
                    if held == 0 {
                        if s.finishing { return ([], true) }
                        s.writerWaiting = true
                        return ([], false)
                    }
                    let end = s.head + min(held, maxBatch)
                    let batch = Array(s.rows[s.head..<end])
                    s.head = end
                    s.inFlight = batch.count
                    if s.head == s.rows.count {
                        s.rows.removeAll(keepingCapacity: true)
                        s.head = 0
                    } else if s.head > 4_096 && s.head * 2 > s.rows.count {
                        s.rows.removeFirst(s.head)
                        s.head = 0
                    }
                    return (batch, false)
                }
                if next.stop { break }
                if next.batch.isEmpty {
                    wake.wait()
                    continue
                }
                var failure = write(next.batch)
                // Another connection holding the lock past the busy timeout (a backup, an
                // operator's `sqlite3` shell) is transient and no row's fault: the batch stays
                // held, counted against the bound, and is written again after a pause that
                // doubles up to 2 s, until it is written or the sink is abandoned.
                var pause = 0.05
                while let busy = failure, Self.isLockContention(busy.code), pauseUnlessAbandoned(seconds: pause) {
                    pause = min(pause * 2, 2)
                    state.withLock { $0.lockRetries += 1 }
                    failure = write(next.batch)
                }
                state.withLock { s in
                    s.inFlight = 0
                    for d in next.batch { s.bytes = max(0, s.bytes - Self.size(d)) }
                    if let failure {
                        s.counts.failed += next.batch.count
                        s.unreported = failure
                        if s.firstFailure == nil { s.firstFailure = failure }
                    } else {
                        s.counts.written += next.batch.count
                    }
                }
            }
            // A finished run is made durable; an abandoned one is only closed.
            let (finishing, abandoned) = state.withLock { ($0.finishing, $0.abandoned) }
            if finishing && !abandoned {
                do throws(SQLiteError) {
                    try SQLite.execute(connection.db, "PRAGMA wal_checkpoint(TRUNCATE)", operation: "checkpoint")
                } catch {
                    state.withLock { s in if s.firstFailure == nil { s.firstFailure = error } }
                }
            }
            connection.close()
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.writerDone = true
                defer { s.finished = nil }
                return s.finished
            }
            waiter?.resume()
        }

        /// `SQLITE_BUSY` or `SQLITE_LOCKED`, extended codes included.
        static func isLockContention(_ code: Int32) -> Bool { code & 0xff == SQLITE_BUSY || code & 0xff == SQLITE_LOCKED }

        /// Sleeps `seconds` on the writer thread in 50 ms slices; false as soon as the sink is abandoned.
        private func pauseUnlessAbandoned(seconds: Double) -> Bool {
            var left = seconds
            while left > 0 {
                if state.withLock({ $0.abandoned }) { return false }
                Thread.sleep(forTimeInterval: min(left, 0.05))
                left -= 0.05
            }
            return !state.withLock { $0.abandoned }
        }

        /// Upserts `batch` in one transaction; on a failure the transaction is rolled back and
        /// the failure returned (no row of the batch is written).
        private func write(_ batch: [ResultDelivery]) -> SQLiteError? {
            let db = connection.db
            do throws(SQLiteError) {
                try SQLite.execute(db, "BEGIN", operation: "begin")
                do throws(SQLiteError) {
                    let group = SQLiteSink.rowsPerStatement
                    var start = 0
                    while batch.count - start >= group {
                        try upsert(batch[start..<(start + group)], with: connection.upsertGroup)
                        start += group
                    }
                    for i in start..<batch.count { try upsert(batch[i...i], with: connection.upsert) }
                    try SQLite.execute(db, "COMMIT", operation: "commit")
                } catch {
                    _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
                    throw error
                }
                return nil
            } catch {
                let rows = batch.count
                return SQLiteError(
                    operation: "\(error.operation) (a batch of \(rows) row\(rows == 1 ? "" : "s"), not written)", code: error.code, message: error.message)
            }
        }

        /// Runs `statement` (prepared for exactly `rows.count` rows) with `rows` bound.
        private func upsert(_ rows: ArraySlice<ResultDelivery>, with statement: OpaquePointer) throws(SQLiteError) {
            defer {
                sqlite3_reset(statement)
                sqlite3_clear_bindings(statement)
            }
            let transient = SQLite.transient
            var rc = SQLITE_OK
            for (r, delivery) in rows.enumerated() where rc == SQLITE_OK {
                let p = Int32(r * 6)
                rc = sqlite3_bind_text(statement, p + 1, delivery.runID, -1, transient)
                if rc == SQLITE_OK { rc = sqlite3_bind_text(statement, p + 2, delivery.commandID, -1, transient) }
                if rc == SQLITE_OK { rc = sqlite3_bind_int64(statement, p + 3, Int64(delivery.index)) }
                if rc == SQLITE_OK { rc = sqlite3_bind_text(statement, p + 4, delivery.status.rawValue, -1, transient) }
                if rc == SQLITE_OK { rc = sqlite3_bind_text(statement, p + 5, delivery.idempotencyKey, -1, transient) }
                if rc == SQLITE_OK {
                    // Bound with its length (one copy, no terminator needed).
                    rc = delivery.record.isEmpty
                        ? sqlite3_bind_text(statement, p + 6, "", 0, transient)
                        : delivery.record.withUnsafeBufferPointer { bytes in
                            bytes.withMemoryRebound(to: CChar.self) { chars in
                                sqlite3_bind_text(statement, p + 6, chars.baseAddress, Int32(clamping: chars.count), transient)
                            }
                        }
                }
            }
            guard rc == SQLITE_OK else { throw SQLiteError(operation: "bind", code: rc, message: String(cString: sqlite3_errmsg(connection.db))) }
            let stepped = sqlite3_step(statement)
            guard stepped == SQLITE_DONE else {
                let what = rows.count == 1 ? "'\(rows.first!.commandID)'" : "\(rows.count) rows from '\(rows.first!.commandID)'"
                throw SQLiteError(operation: "upsert of \(what)", code: stepped, message: String(cString: sqlite3_errmsg(connection.db)))
            }
        }
    }
}
