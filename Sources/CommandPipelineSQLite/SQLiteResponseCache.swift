import CSQLite
import CommandPipeline
import Dispatch
import Foundation
import Synchronization

/// A `ResponseCache` in a SQLite file (`--response-cache PATH`), shared by every run that names it,
/// several at once (its layout: `SQLiteResponseCacheFormat.swift`).
///
/// - **Connections.** Lookups read through `readerCount` connections (each under its own mutex,
///   on the caller's thread; a lookup takes the first free one); answers are written through
///   another by a thread of the store's own, so a call that
///   stores an answer only hands it over (`store` appends to a table in memory and returns).
///   The writer takes everything handed over, up to `maxBatch` answers, and writes it as one
///   transaction (`BEGIN IMMEDIATE`, a prepared upsert per answer, the eviction, `COMMIT`);
///   after the first answer it gathers for `Writer.gatherDelay` (100 ms; `finish` cuts it
///   short), and while it writes, the next group gathers, so groups grow with the rate. Until every read
///   snapshot sees an answer's commit, lookups answer it from that table. Past `maxPendingBytes` held
///   there (the disk does not keep up), `store` drops the answer instead (`dropped`): the call is
///   answered as always, only not cached; a `store` never blocks.
/// - **Several processes**: WAL mode, a 10 s busy timeout; a writer holds the lock for one
///   short transaction at a time.
/// - **Lookups share a read snapshot**: one read transaction serves up to `snapshotLookups`
///   lookups for at most `snapshotAge` (then it is ended, also when no lookup follows); this
///   store's own answers are always seen (from memory until every snapshot sees their commit,
///   `SnapshotMark`), so its commits do not end the snapshots; another process's answers are seen `snapshotAge` later at most. The file is
///   read through a memory map (`mmap_size`) with a larger page cache. Once the log holds
///   `walCheckpointPages` pages (rather than SQLite's 1,000) the writer checkpoints it after
///   each commit and lookups stop sharing snapshots until it has started again (`Writer.logLong`:
///   the log stays bounded); and at `finish`.
/// - **Durability**: `finish` returns once every answer handed over is committed (and the log
///   checkpointed, passively). A process killed before loses the answers not yet committed —
///   those handed over since the writer's last commit; the file stays as of that commit (WAL).
/// - **A file that is not a cache** (not SQLite, damaged, another program's database, a newer
///   format) is refused when opened with an `OpenError` saying which; nothing is written to it.
/// - **Bounds**: an answer older than `ttl` is a miss; after each group, the oldest answers go
///   until the entries' bytes are within `maxBytes`.
/// - A write that fails is reported by `finish` (a read that fails is a miss, reported the same way).
public final class SQLiteResponseCache: ResponseCache {
    public let path: String
    public let ttl: Duration?
    public let maxBytes: Int
    /// Answers per write transaction at most.
    public let maxBatch: Int
    /// Lookups served by one read snapshot at most.
    public static let snapshotLookups = 1024
    /// How long one read snapshot is used at most (and held when no lookup comes).
    public static let snapshotAge: Duration = .milliseconds(100)
    /// The log's size, in pages, that makes a commit checkpoint it (SQLite's default: 1,000).
    static let walCheckpointPages = 16_384
    /// The file is read through a memory map of up to this many bytes (no system call per page).
    static let mmapBytes = 256 << 20
    /// The page cache, in KiB (SQLite's default: 2,000).
    static let pageCacheKiB = 16_384
    /// Bytes of answers held in memory (handed to the writer, or committed and not yet seen by
    /// every read snapshot), at most: past it `store` drops the answer (counted in `dropped`)
    /// rather than wait — a `store` never blocks its caller's thread.
    package static let maxPendingBytes = 64 << 20
    private let now: @Sendable () -> Date
    private let clock: any PipelineClock
    /// The read connections: a lookup takes the first free one (so one that is busy, or whose
    /// holder was preempted, never makes the others wait).
    private let readers: [ReaderSlot]
    private let nextReader = Atomic<Int>(0)
    /// Read connections per store: one per processor (at least 2, at most 8); each re-reads the
    /// pages the writer changed when it starts a snapshot, so more cost a cold run more.
    static let readerCount = max(2, min(8, ProcessInfo.processInfo.activeProcessorCount))
    private let writer: Writer
    private let hitCount = Atomic<Int>(0)

    /// The file cannot be used as a response cache; `message` says why and what to do.
    public struct OpenError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// One read connection under its lock.
    private final class ReaderSlot: Sendable {
        let reader: Mutex<Reader?>
        init(_ reader: Reader) { self.reader = Mutex(reader) }
    }

    /// The writer's commits a read connection's snapshot sees at least (`Int.max`: no snapshot
    /// open, the next one sees every commit): the writer keeps a committed answer in memory
    /// until every snapshot sees it, so a commit does not end the snapshots.
    final class SnapshotMark: Sendable {
        let commits = Atomic<Int>(Int.max)
    }

    /// A read connection, its statement and its snapshot (used under its slot's mutex only).
    private final class Reader: @unchecked Sendable {
        let db: OpaquePointer
        let select: OpaquePointer
        var failure: SQLiteSink.SQLiteError?
        /// A read transaction is open (`BEGIN` done): lookups made in it since, and when it began.
        var reading = false
        var snapshotReads = 0
        var snapshotStart = ContinuousClock.Instant.now
        /// The writer's commits this snapshot sees at least.
        let mark: SnapshotMark
        /// Which snapshot an end timer was armed for.
        var snapshot = 0

        init(db: OpaquePointer, select: OpaquePointer, mark: SnapshotMark) {
            self.db = db
            self.select = select
            self.mark = mark
        }

        func close() {
            sqlite3_finalize(select)
            sqlite3_close_v2(db)
        }

        func remember(_ error: SQLiteSink.SQLiteError) { if failure == nil { failure = error } }
    }

    /// Opens (or creates) the cache at `path`; throws `OpenError` for a file that is not one.
    /// - Parameters:
    ///   - ttl: how long an answer stays fresh; nil: forever.
    ///   - maxBytes: the entries' bytes at most (key and answer; the file has SQLite's pages and index on top).
    ///   - create: create the file when it does not exist (`pipeline cache stats` does not).
    ///   - maxBatch: answers per write transaction at most.
    ///   - clock: ends an idle read snapshot (tests pass their own).
    ///   - now: the wall clock, for answers' ages (tests pass their own).
    public init(
        path: String, ttl: Duration? = nil, maxBytes: Int = 1 << 30, create: Bool = true, maxBatch: Int = 512,
        clock: (any PipelineClock)? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) throws(OpenError) {
        self.path = path
        self.ttl = ttl
        self.maxBytes = max(1, maxBytes)
        self.maxBatch = max(1, maxBatch)
        self.clock = clock ?? SystemClock()
        self.now = now
        // The first connection checks the file (or creates the cache); then the others.
        var opened: [OpaquePointer] = []
        var prepared: [OpaquePointer] = []
        func closeAll() {
            for statement in prepared { sqlite3_finalize(statement) }
            for db in opened { sqlite3_close_v2(db) }
        }
        do {
            for i in 0...Self.readerCount { opened.append(try Self.open(path, create: create && i == 0)) }
        } catch {
            closeAll()
            throw error
        }
        do throws(SQLiteSink.SQLiteError) {
            for db in opened.dropLast() { prepared.append(try SQLite.prepare(db, Self.selectSQL)) }
            // The writer's temporary files in memory: each upsert fires a trigger, so SQLite
            // keeps a statement journal for it (to undo that statement alone), and on disk that
            // was a temporary file written twice per answer — 1.15 million `pwrite` calls for
            // 100,000 answers (a cold run of 100,000 mock commands: 10–20% less CPU and wall
            // time; Benchmarks/README, stop 36). Every statement this connection runs changes
            // one answer (eviction deletes one at a time), so the journal stays small. (Not for
            // `prune`, whose one DELETE may change the whole table: its journal spills to disk.)
            try SQLite.execute(opened[opened.count - 1], "PRAGMA temp_store = MEMORY", operation: "setting temp_store")
            prepared.append(try SQLite.prepare(opened[opened.count - 1], Self.upsertSQL))
        } catch {
            closeAll()
            throw OpenError(message: "cannot use the response cache '\(path)': \(error)")
        }
        let marks = (0..<Self.readerCount).map { _ in SnapshotMark() }
        readers = (0..<Self.readerCount).map { ReaderSlot(Reader(db: opened[$0], select: prepared[$0], mark: marks[$0])) }
        writer = Writer(
            db: opened[Self.readerCount], upsert: prepared[Self.readerCount], maxBatch: max(1, maxBatch),
            maxBytes: max(1, maxBytes), marks: marks)
        let writer = self.writer
        let thread = Thread { writer.run() }
        thread.name = "pipeline-response-cache"
        thread.start()
    }

    deinit {
        writer.abandon()
        for slot in readers {
            slot.reader.withLock { r in
                r?.close()
                r = nil
            }
        }
    }

    // MARK: Opening

    /// The database at `path`, checked to be a response cache (or made one when it is new and empty).
    static func open(_ path: String, create: Bool) throws(OpenError) -> OpaquePointer {
        let db: OpaquePointer
        do throws(SQLiteSink.SQLiteError) { db = try SQLite.open(path, create: create) } catch {
            if error.code == SQLITE_CANTOPEN && !create && !FileManager.default.fileExists(atPath: path) {
                throw OpenError(message: "no response cache at '\(path)': the file does not exist")
            }
            throw OpenError(message: "cannot open the response cache '\(path)': \(error.message)")
        }
        do {
            try harden(db)
            try check(db, path: path, create: create)
            try SQLite.useWriteAheadLog(db)
            try SQLite.execute(
                db, "PRAGMA mmap_size = \(mmapBytes); PRAGMA cache_size = -\(pageCacheKiB); PRAGMA wal_autocheckpoint = \(walCheckpointPages)",
                operation: "setting the memory map, page cache and checkpoint size")
            return db
        } catch let error as OpenError {
            sqlite3_close_v2(db)
            throw error
        } catch {
            sqlite3_close_v2(db)
            throw Self.unusable(path, error as? SQLiteSink.SQLiteError)
        }
    }

    private static func unusable(_ path: String, _ error: SQLiteSink.SQLiteError?) -> OpenError {
        guard let error else { return OpenError(message: "'\(path)' cannot be used as a response cache") }
        switch error.code & 0xff {
        case SQLITE_NOTADB, SQLITE_CORRUPT:
            return OpenError(message: "'\(path)' is not a response cache: \(error.message) (not a SQLite database, or a damaged one); give another path, or remove the file to start an empty cache")
        case SQLITE_BUSY, SQLITE_LOCKED:
            return OpenError(message: "the response cache '\(path)' stayed locked by another process: \(error.message)")
        default:
            return OpenError(message: "cannot use the response cache '\(path)': \(error)")
        }
    }

    /// A cache file may come from elsewhere: its schema's functions are not trusted
    /// (`trusted_schema=OFF`) and SQL cannot corrupt it (`SQLITE_DBCONFIG_DEFENSIVE`).
    private static func harden(_ db: OpaquePointer) throws {
        let rc = csqlite_enable_defensive(db)
        guard rc == SQLITE_OK else {
            throw SQLiteSink.SQLiteError(operation: "turning on SQLITE_DBCONFIG_DEFENSIVE", code: rc, message: String(cString: sqlite3_errmsg(db)))
        }
        try SQLite.execute(db, "PRAGMA trusted_schema = OFF", operation: "setting trusted_schema")
    }

    /// The triggers and views of a cache made by this code (`schema`, in an empty database in
    /// memory): "type name sql" per object, as SQLite records them.
    private static let ownCode: Result<[String], SQLiteSink.SQLiteError> = {
        do throws(SQLiteSink.SQLiteError) {
            let db = try SQLite.open(":memory:")
            defer { sqlite3_close_v2(db) }
            try SQLite.execute(db, schema, operation: "creating the response cache in memory")
            return .success(try strings(db, codeSQL))
        } catch {
            return .failure(error)
        }
    }()
    private static let codeSQL = "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master WHERE type IN ('trigger', 'view') ORDER BY type, name"

    static func newerFormat(_ path: String, _ found: String) -> OpenError {
        OpenError(message: "'\(path)' is a response cache of format version \(found); this pipeline reads version \(version) (and converts version 1): give another path")
    }

    /// Throws when the file holds triggers or views other than this code's (`ownCode`; format 1's
    /// are the same text): they would run on every write.
    static func refuseForeignCode(_ db: OpaquePointer, path: String) throws {
        let found = try strings(db, codeSQL)
        let own = try ownCode.get()
        guard found != own else { return }
        let foreign = found.filter { !own.contains($0) }.map { "\($0.split(separator: " ").prefix(2).joined(separator: " "))" }
        let shown = foreign.prefix(3).map { "'\($0)'" }.joined(separator: ", ") + (foreign.count > 3 ? ", …" : "")
        throw OpenError(
            message: "'\(path)' is a response cache holding triggers or views this pipeline did not create\(foreign.isEmpty ? " (one of its own is missing)" : ": \(shown)"); it is not used. Give another path, or remove the file to start an empty cache")
    }

    /// Rows are numbered up from the last (`upsertSQL`): a file whose numbers reach 2^62 (no run
    /// stores that many answers; a file made elsewhere may) is refused rather than let them run out.
    static func refuseExhaustedRowNumbers(_ db: OpaquePointer, path: String) throws {
        let last = Int64(try strings(db, "SELECT ifnull(max(id), 0) FROM response_cache").first ?? "") ?? .max
        guard last < 1 << 62 else {
            throw OpenError(message: "'\(path)' is a response cache whose row numbers are used up (the last is \(last)); give another path, or remove the file to start an empty cache")
        }
    }

    /// Reads the schema (the first read of the file: a file that is not SQLite fails here) and
    /// checks it is a cache of this format, or creates one in an empty database.
    private static func check(_ db: OpaquePointer, path: String, create: Bool) throws {
        let tables = try strings(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        if tables.contains("response_cache_meta") {
            let rows = try strings(db, "SELECT format || ' ' || version FROM response_cache_meta WHERE id = 1")
            guard let row = rows.first else { throw OpenError(message: "'\(path)' is not a response cache: its format record is missing; give another path") }
            let fields = row.split(separator: " ")
            guard fields.count == 2, fields[0] == Substring(format) else {
                throw OpenError(message: "'\(path)' is not a response cache: its format is '\(row)'; give another path")
            }
            guard fields[1] == Substring(String(version)) || fields[1] == "1" else { throw newerFormat(path, String(fields[1])) }
            // Code in the file runs on every write: only the triggers this code creates may be there.
            try refuseForeignCode(db, path: path)
            if fields[1] == "1" { try convertFromVersion1(db, path: path) }
            try refuseExhaustedRowNumbers(db, path: path)
            return
        }
        if !tables.isEmpty {
            let shown = tables.prefix(3).map { "'\($0)'" }.joined(separator: ", ") + (tables.count > 3 ? ", …" : "")
            throw OpenError(message: "'\(path)' is a SQLite database but not a response cache (it holds the table\(tables.count == 1 ? "" : "s") \(shown)); give another path")
        }
        guard create else { throw OpenError(message: "'\(path)' is an empty database, not a response cache") }
        // Must come before the first table; lets `prune` give freed pages back to the file system.
        try SQLite.execute(db, "PRAGMA auto_vacuum = INCREMENTAL", operation: "setting auto_vacuum")
        try SQLite.execute(db, "BEGIN IMMEDIATE; \(schema) COMMIT;", operation: "creating the response cache")
    }

    /// The first column of every row of `sql`.
    static func strings(_ db: OpaquePointer, _ sql: String) throws(SQLiteSink.SQLiteError) -> [String] {
        let statement = try SQLite.prepare(db, sql)
        defer { sqlite3_finalize(statement) }
        var rows: [String] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return rows }
            guard rc == SQLITE_ROW else { throw SQLiteSink.SQLiteError(operation: "read", code: rc, message: String(cString: sqlite3_errmsg(db))) }
            rows.append(sqlite3_column_text(statement, 0).map { String(cString: $0) } ?? "")
        }
    }

    // MARK: ResponseCache

    public func answer(for key: String) -> GenerationResponse? {
        // Handed to the writer, not committed yet: answered from memory.
        if let bytes = writer.pending(key) {
            let answer = CachedAnswer.decode(bytes)
            if answer != nil { hitCount.add(1, ordering: .relaxed) }
            return answer
        }
        // Read after the pending table: an answer gone from it is seen by every snapshot by then
        // (and a snapshot begun now sees at least `commits`).
        let commits = writer.commits.load(ordering: .sequentiallyConsistent)
        let now = self.now()
        let ttl = self.ttl
        var armSnapshotEnd: (slot: Int, snapshot: Int)?
        defer { if let arm = armSnapshotEnd { scheduleSnapshotEnd(arm.slot, arm.snapshot) } }
        let first = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue
        let logLong = writer.logLong.load(ordering: .relaxed)
        func lookup(_ c: Reader?, slot: Int) -> GenerationResponse? {
            guard let c else { return nil }
            // The log is long: no snapshot outlives its lookup, so the writer's checkpoint can
            // copy the whole log and the next commit start it again (`Writer.logLong`).
            defer { if logLong { Self.endSnapshot(c) } }
            // One read transaction for many lookups (no lock and header read per lookup); this
            // store's answers stay in memory until every snapshot sees them.
            if c.reading, logLong || c.snapshotReads >= Self.snapshotLookups || ContinuousClock.Instant.now - c.snapshotStart >= Self.snapshotAge {
                Self.endSnapshot(c)
            }
            if !c.reading {
                // Marked before the snapshot is taken (at the first step): it sees at least this.
                c.mark.commits.store(commits, ordering: .sequentiallyConsistent)
                guard sqlite3_exec(c.db, "BEGIN", nil, nil, nil) == SQLITE_OK else {
                    c.mark.commits.store(Int.max, ordering: .sequentiallyConsistent)
                    return nil
                }
                c.reading = true
                c.snapshotReads = 0
                c.snapshotStart = .now
                c.snapshot &+= 1
                if !logLong { armSnapshotEnd = (slot, c.snapshot) }
            }
            c.snapshotReads += 1
            let statement = c.select
            defer { sqlite3_reset(statement) }
            guard Self.bindKey(statement, 1, key) == SQLITE_OK else { return nil }
            let rc = sqlite3_step(statement)
            guard rc == SQLITE_ROW else {
                if rc != SQLITE_DONE {
                    c.remember(SQLiteSink.SQLiteError(operation: "lookup", code: rc, message: String(cString: sqlite3_errmsg(c.db))))
                    sqlite3_reset(statement)
                    Self.endSnapshot(c)
                }
                return nil
            }
            let storedAt = Date(timeIntervalSince1970: sqlite3_column_double(statement, 1))
            guard ResponseCacheAge.isFresh(storedAt: storedAt, now: now, ttl: ttl), let text = sqlite3_column_text(statement, 0) else { return nil }
            let count = Int(sqlite3_column_bytes(statement, 0))
            return CachedAnswer.decode(UnsafeBufferPointer(start: text, count: count))
        }
        // The first free connection, from a different one each time; all busy: wait for one.
        var answer: GenerationResponse?
        var done = false
        for step in 0..<readers.count {
            let slot = Int(UInt(bitPattern: first &+ step) % UInt(readers.count))
            if let outcome = readers[slot].reader.withLockIfAvailable({ lookup($0, slot: slot) }) {
                answer = outcome
                done = true
                break
            }
        }
        if !done {
            let slot = Int(UInt(bitPattern: first) % UInt(readers.count))
            answer = readers[slot].reader.withLock { lookup($0, slot: slot) }
        }
        if answer != nil { hitCount.add(1, ordering: .relaxed) }
        return answer
    }

    /// Ends the read transaction, if one is open (an error leaves none open either way).
    private static func endSnapshot(_ c: Reader) {
        guard c.reading else { return }
        c.reading = false
        if sqlite3_get_autocommit(c.db) == 0 { _ = sqlite3_exec(c.db, "COMMIT", nil, nil, nil) }
        if sqlite3_get_autocommit(c.db) == 0 { _ = sqlite3_exec(c.db, "ROLLBACK", nil, nil, nil) }
        c.mark.commits.store(Int.max, ordering: .sequentiallyConsistent)
    }

    /// Ends snapshot `snapshot` after `snapshotAge` if it is still open: a snapshot held while no
    /// lookup comes would keep other processes' log from being checkpointed.
    private func scheduleSnapshotEnd(_ slot: Int, _ snapshot: Int) {
        let clock = self.clock
        Task { [weak self] in
            try? await clock.sleep(for: Self.snapshotAge)
            self?.readers[slot].reader.withLock { c in
                guard let c, c.reading, c.snapshot == snapshot else { return }
                Self.endSnapshot(c)
            }
        }
    }

    /// Hands the answer to the writer thread (it is answered from memory until written).
    public func store(_ answer: GenerationResponse, for key: String) {
        writer.add(key, answer: CachedAnswer.encode(answer), createdAt: now().timeIntervalSince1970)
    }

    /// Deletes the oldest answers until the entries' bytes are at most `limit` (no more than that
    /// takes); returns how many went.
    @discardableResult
    static func evict(_ db: OpaquePointer, toBytes limit: Int) throws(SQLiteSink.SQLiteError) -> Int {
        var removed = 0
        while let bytes = Int(try strings(db, "SELECT bytes FROM response_cache_meta WHERE id = 1").first ?? ""), bytes > limit {
            let excess = bytes - limit
            var covered = 0
            var victims: [Int64] = []
            for row in try strings(db, oldestSQL) {
                let fields = row.split(separator: " ")
                guard fields.count == 2, let id = Int64(fields[0]) else { continue }
                victims.append(id)
                covered = covered.addingSaturating(Int(fields[1]) ?? 0)
                if covered >= excess { break }
            }
            if victims.isEmpty { break }
            let delete = try SQLite.prepare(db, evictSQL)
            defer { sqlite3_finalize(delete) }
            for id in victims {
                sqlite3_bind_int64(delete, 1, id)
                let rc = sqlite3_step(delete)
                sqlite3_reset(delete)
                guard rc == SQLITE_DONE else { throw SQLiteSink.SQLiteError(operation: "evicting the oldest answers", code: rc, message: String(cString: sqlite3_errmsg(db))) }
            }
            removed += victims.count
        }
        return removed
    }


    /// Waits until every answer handed over is written, adds this run's hits to the file's count,
    /// checkpoints the log (passively) and closes the file; throws the first write or read that
    /// failed. Cancelled (abandoned at a timeout), the writer stops after the group in progress.
    public func finish() async throws {
        var readFailure: SQLiteSink.SQLiteError?
        for slot in readers {
            let failure = slot.reader.withLock { r -> SQLiteSink.SQLiteError? in
                guard let open = r else { return nil }
                Self.endSnapshot(open)
                open.close()
                r = nil
                return open.failure
            }
            if readFailure == nil { readFailure = failure }
        }
        let writer = self.writer
        let hits = hitCount.load(ordering: .relaxed)
        await withTaskCancellationHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in writer.finish(hits: hits, done) }
        } onCancel: {
            writer.abandon()
        }
        if let failure = writer.failure ?? readFailure { throw failure }
    }

    /// Answers given by this store so far.
    public var hits: Int { hitCount.load(ordering: .relaxed) }
    /// Whether `store` holds one more answer beside `held` bytes already held: at most
    /// `maxPendingBytes`, or when it replaces an answer held for the same key.
    package static func admits(held: Int, replacing: Bool) -> Bool {
        replacing || held <= maxPendingBytes
    }

    /// Answers not stored because `maxPendingBytes` were held in memory (the disk did not keep up).
    package var droppedAnswers: Int { writer.dropped }

    /// The writer's log bound in pages, and the largest log a commit left (for tests).
    package var logBoundPages: Int {
        get { writer.logBound.load(ordering: .relaxed) }
        set { writer.logBound.store(newValue, ordering: .relaxed) }
    }
    package var largestLogPages: Int { writer.largestLog.load(ordering: .relaxed) }
    /// Answers handed to the writer and not committed yet (for tests).
    package var unwrittenAnswers: Int { writer.unwritten }

    /// A setting of the writer's connection (`PRAGMA name`), for tests. The connection is opened
    /// without SQLite's own mutex and belongs to the writer's thread: call this only while
    /// nothing has been handed over (that thread then waits and does not touch it).
    func writerSetting(_ name: String) -> String? {
        guard let statement = try? SQLite.prepare(writer.db, "PRAGMA \(name)") else { return nil }
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_ROW, let text = sqlite3_column_text(statement, 0) else { return nil }
        return String(cString: text)
    }

    /// The writer's connection, the answers handed to it, and its thread's loop: shared by the
    /// store and the thread, so the thread does not keep the store alive (dropping the store
    /// abandons the writer).

    final class Writer: @unchecked Sendable {
        let db: OpaquePointer
        let upsert: OpaquePointer
        let maxBatch: Int
        let maxBytes: Int
        /// Commits made: a lookup that sees a new count starts a new read snapshot.
        let commits = Atomic<Int>(0)
        /// Answers in `State.pending` (a lookup with none skips the lock).
        private let pendingCount = Atomic<Int>(0)
        private let state = Mutex(State())
        private let wake = DispatchSemaphore(value: 0)
        /// The log holds `walCheckpointPages` pages or more. Lookups hold a read snapshot at
        /// almost every instant, and a checkpoint can copy no page written after the oldest
        /// snapshot began, so SQLite's passive checkpoint never emptied the log: it grew for
        /// as long as the run (163 MB for a 10 MB cache after 20,000 commands at a provider's
        /// rate). While this is set, each lookup ends its snapshot; the writer checkpoints after
        /// each commit, and once the whole log is copied SQLite starts it again at the next commit.
        let logLong = Atomic<Bool>(false)
        /// The log's pages after the writer's last commit, set by SQLite's WAL hook on the
        /// writer's thread (the hook replaces SQLite's automatic checkpoint on this connection).
        private let logPages = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        /// The log's size that sets `logLong` (`walCheckpointPages`; tests set less).
        let logBound = Atomic<Int>(SQLiteResponseCache.walCheckpointPages)
        /// The largest log a commit left (for tests).
        let largestLog = Atomic<Int>(0)

        struct Entry {
            var answer: [UInt8]
            var createdAt: Double
            var sequence: Int
            /// Waiting in `queue` (false: taken by the writer, kept until every snapshot sees it).
            var queued: Bool
            /// The commit that wrote it (kept until every read snapshot sees that commit).
            var committed: Int? = nil
        }

        struct State {
            /// Answers handed over and not yet seen by every read snapshot, by key.
            var pending: [String: Entry] = [:]
            /// Keys to write, in order (those before `head` are taken).
            var queue: [String] = []
            var head = 0
            /// Answers committed and kept in memory until every snapshot sees them, in commit
            /// order (those before `committedHead` are gone).
            var committed: [(key: String, commit: Int, sequence: Int)] = []
            var committedHead = 0
            var bytes = 0
            var sequence = 0
            /// Answers not stored because `maxPendingBytes` were held.
            var dropped = 0
            var writerWaiting = false
            var finishing = false
            var abandoned = false
            var done = false
            var hits = 0
            var finished: CheckedContinuation<Void, Never>?
            var failure: SQLiteSink.SQLiteError?
        }

        /// The read connections' snapshots.
        let marks: [SnapshotMark]
        /// How long the writer gathers answers after the first before it writes them.
        static let gatherDelay = DispatchTimeInterval.milliseconds(100)

        init(db: OpaquePointer, upsert: OpaquePointer, maxBatch: Int, maxBytes: Int, marks: [SnapshotMark]) {
            self.marks = marks
            self.db = db
            self.upsert = upsert
            self.maxBatch = maxBatch
            self.maxBytes = maxBytes
            logPages.initialize(to: 0)
            sqlite3_wal_hook(db, { context, _, _, pages in
                context?.assumingMemoryBound(to: Int32.self).pointee = pages
                return SQLITE_OK
            }, logPages)
        }

        deinit { logPages.deallocate() }

        /// After a commit: a log of `walCheckpointPages` or more is checkpointed (passively:
        /// never waits for a reader) and `logLong` set until a commit finds it started again.
        private func checkpointIfLong() {
            let pages = Int(logPages.pointee)
            if pages > largestLog.load(ordering: .relaxed) { largestLog.store(pages, ordering: .relaxed) }
            let long = pages >= logBound.load(ordering: .relaxed)
            if long { _ = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil) }
            logLong.store(long, ordering: .relaxed)
        }

        var failure: SQLiteSink.SQLiteError? { state.withLock { $0.failure } }

        /// The stored form of `key`'s answer while it is handed over and not committed.
        func pending(_ key: String) -> [UInt8]? {
            guard pendingCount.load(ordering: .sequentiallyConsistent) > 0 else { return nil }
            return state.withLock { $0.pending[key]?.answer }
        }

        var dropped: Int { state.withLock { $0.dropped } }
        var unwritten: Int { state.withLock { $0.pending.values.count { $0.committed == nil } } }

        func add(_ key: String, answer: [UInt8], createdAt: Double) {
            let size = key.utf8.count.addingSaturating(answer.count)
            let signal = state.withLock { s -> Bool in
                guard !s.finishing, !s.abandoned else { return false }
                // The disk does not keep up: drop rather than wait (a wait here would hold a
                // thread of the caller's pool until the writer frees room).
                guard SQLiteResponseCache.admits(held: s.bytes, replacing: s.pending[key] != nil) else {
                    s.dropped = s.dropped.addingSaturating(1)
                    return false
                }
                s.sequence &+= 1
                if let old = s.pending[key] {
                    s.bytes -= key.utf8.count.addingSaturating(old.answer.count)
                    s.pending[key] = Entry(answer: answer, createdAt: createdAt, sequence: s.sequence, queued: true)
                    if !old.queued { s.queue.append(key) }
                } else {
                    s.pending[key] = Entry(answer: answer, createdAt: createdAt, sequence: s.sequence, queued: true)
                    s.queue.append(key)
                }
                s.bytes = s.bytes.addingSaturating(size)
                pendingCount.store(s.pending.count, ordering: .sequentiallyConsistent)
                let signal = s.writerWaiting
                s.writerWaiting = false
                return signal
            }
            if signal { wake.signal() }
        }

        func finish(hits: Int, _ done: CheckedContinuation<Void, Never>) {
            let resumeNow = state.withLock { s -> Bool in
                s.finishing = true
                s.hits = s.hits.addingSaturating(hits)
                if s.done { return true }
                s.finished = done
                return false
            }
            if resumeNow { done.resume() } else { wake.signal() }
        }

        /// Stops the writer after the group in progress; what it still holds is never written.
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

        func run() {
            while true {
                enum Next { case write([(key: String, entry: Entry)]), wait, stop }
                let next = state.withLock { s -> Next in
                    if s.abandoned { return .stop }
                    if s.head == s.queue.count {
                        s.queue.removeAll(keepingCapacity: true)
                        s.head = 0
                        if s.finishing { return .stop }
                        s.writerWaiting = true
                        return .wait
                    }
                    let end = min(s.queue.count, s.head + maxBatch)
                    var batch: [(key: String, entry: Entry)] = []
                    batch.reserveCapacity(end - s.head)
                    for key in s.queue[s.head..<end] {
                        guard var entry = s.pending[key], entry.queued else { continue }
                        entry.queued = false
                        s.pending[key] = entry
                        batch.append((key, entry))
                    }
                    s.head = end
                    if s.head > 4_096 && s.head * 2 > s.queue.count {
                        s.queue.removeFirst(s.head)
                        s.head = 0
                    }
                    return .write(batch)
                }
                switch next {
                case .stop: return stop()
                case .wait:
                    wake.wait()
                    // Gathers for `gatherDelay` before writing (each commit writes the pages it
                    // changed to the log: a commit per answer cost a slower run dearly);
                    // `finish`, `abandon` and a full group cut it short.
                    let hurry = state.withLock { $0.finishing || $0.abandoned || $0.queue.count - $0.head >= maxBatch }
                    if !hurry { _ = wake.wait(timeout: .now() + Self.gatherDelay) }
                case .write(let batch):
                    let failure = write(batch)
                    let commit = failure == nil ? commits.add(1, ordering: .sequentiallyConsistent).newValue : nil
                    if commit != nil { checkpointIfLong() }
                    // Every snapshot open now sees at least this many commits (one begun later sees all).
                    let seen = marks.reduce(Int.max) { min($0, $1.commits.load(ordering: .sequentiallyConsistent)) }
                    state.withLock { s in
                        if let failure, s.failure == nil { s.failure = failure }
                        // Committed: kept until every snapshot sees it; dropped with a failed group:
                        // out (unless handed over again since).
                        for (key, entry) in batch where s.pending[key]?.sequence == entry.sequence {
                            if let commit, commit > seen {
                                s.pending[key]?.committed = commit
                                s.committed.append((key, commit, entry.sequence))
                            } else {
                                s.pending[key] = nil
                                s.bytes -= key.utf8.count.addingSaturating(entry.answer.count)
                            }
                        }
                        // Earlier commits every snapshot sees now: out of memory.
                        while s.committedHead < s.committed.count, s.committed[s.committedHead].commit <= seen {
                            let (key, _, sequence) = s.committed[s.committedHead]
                            s.committedHead += 1
                            if let entry = s.pending[key], entry.sequence == sequence, entry.committed != nil {
                                s.pending[key] = nil
                                s.bytes -= key.utf8.count.addingSaturating(entry.answer.count)
                            }
                        }
                        if s.committedHead == s.committed.count {
                            s.committed.removeAll(keepingCapacity: true)
                            s.committedHead = 0
                        } else if s.committedHead > 4_096 && s.committedHead * 2 > s.committed.count {
                            s.committed.removeFirst(s.committedHead)
                            s.committedHead = 0
                        }
                        pendingCount.store(s.pending.count, ordering: .sequentiallyConsistent)
                    }
                }
            }
        }

        /// The run's end: a finished run adds its hits and checkpoints (passively: never waits
        /// for another run still reading the file); an abandoned one only closes.
        private func stop() {
            let (finishing, abandoned, hits) = state.withLock { ($0.finishing, $0.abandoned, $0.hits) }
            if finishing && !abandoned {
                if hits > 0 {
                    do throws(SQLiteSink.SQLiteError) {
                        try SQLite.execute(db, "UPDATE response_cache_meta SET hits = hits + \(hits) WHERE id = 1", operation: "counting hits")
                    } catch {
                        state.withLock { s in if s.failure == nil { s.failure = error } }
                    }
                }
                _ = sqlite3_exec(db, "PRAGMA wal_checkpoint(PASSIVE)", nil, nil, nil)
            }
            sqlite3_finalize(upsert)
            sqlite3_close_v2(db)
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.done = true
                defer { s.finished = nil }
                return s.finished
            }
            waiter?.resume()
        }

        /// Writes `batch` in one transaction, then evicts the oldest answers past the bound; on a
        /// failure the transaction is rolled back (the group is not kept) and the failure returned.
        private func write(_ batch: [(key: String, entry: Entry)]) -> SQLiteSink.SQLiteError? {
            guard !batch.isEmpty else { return nil }
            do throws(SQLiteSink.SQLiteError) {
                try SQLite.execute(db, "BEGIN IMMEDIATE", operation: "begin")
                do throws(SQLiteSink.SQLiteError) {
                    for (key, entry) in batch { try insert(key, entry) }
                    try SQLiteResponseCache.evict(db, toBytes: maxBytes)
                    try SQLite.execute(db, "COMMIT", operation: "commit of \(batch.count) answer\(batch.count == 1 ? "" : "s")")
                } catch {
                    _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
                    throw error
                }
                return nil
            } catch {
                return error
            }
        }

        private func insert(_ key: String, _ entry: Entry) throws(SQLiteSink.SQLiteError) {
            let statement = upsert
            defer {
                sqlite3_reset(statement)
                sqlite3_clear_bindings(statement)
            }
            let rc = entry.answer.withUnsafeBufferPointer { answer in
                answer.withMemoryRebound(to: CChar.self) { SQLiteResponseCache.bindUpsert(statement, key: key, createdAt: entry.createdAt, answer: $0) }
            }
            guard rc == SQLITE_OK else { throw SQLiteSink.SQLiteError(operation: "bind", code: rc, message: String(cString: sqlite3_errmsg(db))) }
            let stepped = sqlite3_step(statement)
            guard stepped == SQLITE_DONE else {
                throw SQLiteSink.SQLiteError(operation: "store", code: stepped, message: String(cString: sqlite3_errmsg(db)))
            }
        }
    }
}
