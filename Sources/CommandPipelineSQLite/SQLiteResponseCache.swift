import CSQLite
import CommandPipeline
import Foundation
import Synchronization

/// A `ResponseCache` in a SQLite file (`--response-cache PATH`), shared by every run that names it,
/// several at once:
///
///     CREATE TABLE response_cache (
///         key TEXT PRIMARY KEY,        -- ResponseCacheKey: 64 hex digits
///         created_at REAL NOT NULL,    -- when stored, seconds since 1970
///         bytes INTEGER NOT NULL,      -- length of key and answer
///         answer TEXT NOT NULL)        -- the answer as JSON (text, model, finish_reason, usage, parsed)
///     CREATE TABLE response_cache_meta (id = 1, format, version, bytes, hits)  -- bytes kept by triggers
///
/// - **Several processes**: WAL mode, a 10 s busy timeout; answers are written in groups (a
///   transaction of up to `maxBatch` answers, at the latest `commitDelay` after the first), so a
///   writer holds the lock for one short transaction at a time. Until then this process answers
///   from the pending group itself.
/// - **Lookups share a read snapshot**: one read transaction serves up to `snapshotLookups`
///   lookups for at most `snapshotAge` (then it is ended, also when no lookup follows), and it
///   ends before each write of this process, so its own answers are always seen; another
///   process's answers are seen `snapshotAge` later at most. The file is read through a memory
///   map (`mmap_size`) with a larger page cache, and the log is checkpointed every
///   `walCheckpointPages` pages rather than SQLite's 1,000, and at `finish`.
/// - **kill -9**: WAL and transactions: a killed writer leaves the file as of its last commit.
/// - **A file that is not a cache** (not SQLite, damaged, another program's database, a newer
///   format) is refused when opened with an `OpenError` saying which; nothing is written to it.
/// - **Bounds**: an answer older than `ttl` is a miss; after each group, the oldest answers go
///   until the entries' bytes are within `maxBytes`.
/// - A write that fails is reported by `finish` (a read that fails is a miss, reported the same way).
public final class SQLiteResponseCache: ResponseCache {
    public let path: String
    public let ttl: Duration?
    public let maxBytes: Int
    public let maxBatch: Int
    public let commitDelay: Duration
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
    private let now: @Sendable () -> Date
    private let clock: any PipelineClock
    private let connection: Mutex<Connection?>

    /// The file cannot be used as a response cache; `message` says why and what to do.
    public struct OpenError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    static let format = "commandpipeline-response-cache"
    static let version = 1

    /// Created in one transaction, by whichever process comes first.
    static let schema = """
        CREATE TABLE IF NOT EXISTS response_cache_meta (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            format TEXT NOT NULL,
            version INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            hits INTEGER NOT NULL
        );
        INSERT OR IGNORE INTO response_cache_meta (id, format, version, bytes, hits) VALUES (1, '\(format)', \(version), 0, 0);
        CREATE TABLE IF NOT EXISTS response_cache (
            key TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            bytes INTEGER NOT NULL,
            answer TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS response_cache_by_age ON response_cache (created_at);
        CREATE TRIGGER IF NOT EXISTS response_cache_added AFTER INSERT ON response_cache
            BEGIN UPDATE response_cache_meta SET bytes = bytes + NEW.bytes WHERE id = 1; END;
        CREATE TRIGGER IF NOT EXISTS response_cache_removed AFTER DELETE ON response_cache
            BEGIN UPDATE response_cache_meta SET bytes = bytes - OLD.bytes WHERE id = 1; END;
        CREATE TRIGGER IF NOT EXISTS response_cache_replaced AFTER UPDATE ON response_cache
            BEGIN UPDATE response_cache_meta SET bytes = bytes - OLD.bytes + NEW.bytes WHERE id = 1; END;
        """

    static let selectSQL = "SELECT answer, created_at FROM response_cache WHERE key = ?1"
    static let upsertSQL = """
        INSERT INTO response_cache (key, created_at, bytes, answer) VALUES (?1, ?2, ?3, ?4)
        ON CONFLICT (key) DO UPDATE SET created_at = excluded.created_at, bytes = excluded.bytes, answer = excluded.answer
        """
    /// The oldest answers, a group at a time (the index on `created_at` finds them), as `key bytes`.
    static let oldestSQL = "SELECT key || ' ' || bytes FROM response_cache ORDER BY created_at, key LIMIT 256"

    private struct Pending {
        var key: String
        var answer: [UInt8]
        var createdAt: Double
    }

    /// The open database, its statements and the group not yet written (used under the mutex only).
    private final class Connection: @unchecked Sendable {
        let db: OpaquePointer
        let select: OpaquePointer
        let upsert: OpaquePointer
        var pending: [Pending] = []
        var pendingIndex: [String: Int] = [:]
        /// Which group a timer was armed for (0: none armed).
        var group = 0
        var timerArmed = false
        var hits = 0
        var failure: SQLiteSink.SQLiteError?
        /// A read transaction is open (`BEGIN` done): lookups made in it since, and when it began.
        var reading = false
        var snapshotReads = 0
        var snapshotStart = ContinuousClock.Instant.now
        /// Which snapshot an end timer was armed for.
        var snapshot = 0

        init(db: OpaquePointer, select: OpaquePointer, upsert: OpaquePointer) {
            self.db = db
            self.select = select
            self.upsert = upsert
        }

        func close() {
            sqlite3_finalize(select)
            sqlite3_finalize(upsert)
            sqlite3_close_v2(db)
        }

        func remember(_ error: SQLiteSink.SQLiteError) { if failure == nil { failure = error } }
    }

    /// Opens (or creates) the cache at `path`; throws `OpenError` for a file that is not one.
    /// - Parameters:
    ///   - ttl: how long an answer stays fresh; nil: forever.
    ///   - maxBytes: the entries' bytes at most (key and answer; the file has SQLite's pages and index on top).
    ///   - create: create the file when it does not exist (`pipeline cache stats` does not).
    ///   - now: the wall clock, for answers' ages (tests pass their own).
    public init(
        path: String, ttl: Duration? = nil, maxBytes: Int = 1 << 30, create: Bool = true, maxBatch: Int = 512,
        commitDelay: Duration = .milliseconds(200), clock: any PipelineClock = SystemClock(), now: @escaping @Sendable () -> Date = { Date() }
    ) throws(OpenError) {
        self.path = path
        self.ttl = ttl
        self.maxBytes = max(1, maxBytes)
        self.maxBatch = max(1, maxBatch)
        self.commitDelay = commitDelay
        self.clock = clock
        self.now = now
        let db = try Self.open(path, create: create)
        do throws(SQLiteSink.SQLiteError) {
            connection = Mutex(Connection(db: db, select: try SQLite.prepare(db, Self.selectSQL), upsert: try SQLite.prepare(db, Self.upsertSQL)))
        } catch {
            sqlite3_close_v2(db)
            throw OpenError(message: "cannot use the response cache '\(path)': \(error)")
        }
    }

    deinit {
        connection.withLock { c in
            c?.close()
            c = nil
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
            guard fields[1] == Substring(String(version)) else {
                throw OpenError(message: "'\(path)' is a response cache of format version \(fields[1]); this pipeline reads version \(version): give another path")
            }
            // Code in the file runs on every write: only the triggers this code creates may be there.
            let found = try strings(db, codeSQL)
            let own = try ownCode.get()
            if found != own {
                let foreign = found.filter { !own.contains($0) }.map { "\($0.split(separator: " ").prefix(2).joined(separator: " "))" }
                let shown = foreign.prefix(3).map { "'\($0)'" }.joined(separator: ", ") + (foreign.count > 3 ? ", …" : "")
                throw OpenError(
                    message: "'\(path)' is a response cache holding triggers or views this pipeline did not create\(foreign.isEmpty ? " (one of its own is missing)" : ": \(shown)"); it is not used. Give another path, or remove the file to start an empty cache")
            }
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
        let now = self.now()
        let ttl = self.ttl
        var armSnapshotEnd: Int?
        defer { if let snapshot = armSnapshotEnd { scheduleSnapshotEnd(snapshot) } }
        return connection.withLock { c -> GenerationResponse? in
            guard let c else { return nil }
            if let i = c.pendingIndex[key] {
                c.hits += 1
                return CachedAnswer.decode(c.pending[i].answer)
            }
            // One read transaction for many lookups (no lock and header read per lookup).
            if c.reading, c.snapshotReads >= Self.snapshotLookups || ContinuousClock.Instant.now - c.snapshotStart >= Self.snapshotAge {
                Self.endSnapshot(c)
            }
            if !c.reading {
                guard sqlite3_exec(c.db, "BEGIN", nil, nil, nil) == SQLITE_OK else { return nil }
                c.reading = true
                c.snapshotReads = 0
                c.snapshotStart = .now
                c.snapshot &+= 1
                armSnapshotEnd = c.snapshot
            }
            c.snapshotReads += 1
            let statement = c.select
            defer { sqlite3_reset(statement) }
            guard sqlite3_bind_text(statement, 1, key, -1, SQLite.transient) == SQLITE_OK else { return nil }
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
            let answer = CachedAnswer.decode(UnsafeBufferPointer(start: text, count: count))
            if answer != nil { c.hits += 1 }
            return answer
        }
    }

    /// Ends the read transaction, if one is open (an error leaves none open either way).
    private static func endSnapshot(_ c: Connection) {
        guard c.reading else { return }
        c.reading = false
        if sqlite3_get_autocommit(c.db) == 0 { _ = sqlite3_exec(c.db, "COMMIT", nil, nil, nil) }
        if sqlite3_get_autocommit(c.db) == 0 { _ = sqlite3_exec(c.db, "ROLLBACK", nil, nil, nil) }
    }

    /// Ends snapshot `snapshot` after `snapshotAge` if it is still open: a snapshot held while no
    /// lookup comes would keep other processes' log from being checkpointed.
    private func scheduleSnapshotEnd(_ snapshot: Int) {
        let clock = self.clock
        Task { [weak self] in
            try? await clock.sleep(for: Self.snapshotAge)
            self?.connection.withLock { c in
                guard let c, c.reading, c.snapshot == snapshot else { return }
                Self.endSnapshot(c)
            }
        }
    }

    public func store(_ answer: GenerationResponse, for key: String) {
        let entry = Pending(key: key, answer: CachedAnswer.encode(answer), createdAt: now().timeIntervalSince1970)
        let armed = connection.withLock { c -> Int? in
            guard let c else { return nil }
            if let i = c.pendingIndex[entry.key] {
                c.pending[i] = entry
            } else {
                c.pendingIndex[entry.key] = c.pending.count
                c.pending.append(entry)
            }
            if c.pending.count >= maxBatch {
                write(c)
                return nil
            }
            guard !c.timerArmed else { return nil }
            c.timerArmed = true
            c.group += 1
            return c.group
        }
        // The group is written by `commitDelay` at the latest, even if no answer follows.
        if let group = armed {
            let delay = commitDelay, clock = self.clock
            Task { [weak self] in
                try? await clock.sleep(for: delay)
                self?.writeGroup(group)
            }
        }
    }

    private func writeGroup(_ group: Int) {
        connection.withLock { c in
            guard let c, c.timerArmed, c.group == group else { return }
            write(c)
        }
    }

    /// Writes the pending group in one transaction, then evicts the oldest answers past the bound.
    private func write(_ c: Connection) {
        c.timerArmed = false
        guard !c.pending.isEmpty else { return }
        // The read snapshot ends first: a write starts from the newest state, and the next
        // lookup sees this group.
        Self.endSnapshot(c)
        let group = c.pending
        c.pending = []
        c.pendingIndex = [:]
        do throws(SQLiteSink.SQLiteError) {
            try SQLite.execute(c.db, "BEGIN IMMEDIATE", operation: "begin")
            do throws(SQLiteSink.SQLiteError) {
                for entry in group { try insert(entry, c) }
                try Self.evict(c.db, toBytes: maxBytes)
                try SQLite.execute(c.db, "COMMIT", operation: "commit of \(group.count) answer\(group.count == 1 ? "" : "s")")
            } catch {
                _ = sqlite3_exec(c.db, "ROLLBACK", nil, nil, nil)
                throw error
            }
        } catch {
            c.remember(error)
        }
    }

    private func insert(_ entry: Pending, _ c: Connection) throws(SQLiteSink.SQLiteError) {
        let statement = c.upsert
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        let bytes = entry.key.utf8.count + entry.answer.count
        var rc = sqlite3_bind_text(statement, 1, entry.key, -1, SQLite.transient)
        if rc == SQLITE_OK { rc = sqlite3_bind_double(statement, 2, entry.createdAt) }
        if rc == SQLITE_OK { rc = sqlite3_bind_int64(statement, 3, Int64(bytes)) }
        if rc == SQLITE_OK {
            rc = entry.answer.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { sqlite3_bind_text(statement, 4, $0.baseAddress, Int32(clamping: $0.count), SQLite.transient) }
            }
        }
        guard rc == SQLITE_OK else { throw SQLiteSink.SQLiteError(operation: "bind", code: rc, message: String(cString: sqlite3_errmsg(c.db))) }
        let stepped = sqlite3_step(statement)
        guard stepped == SQLITE_DONE else {
            throw SQLiteSink.SQLiteError(operation: "store", code: stepped, message: String(cString: sqlite3_errmsg(c.db)))
        }
    }

    /// Deletes the oldest answers until the entries' bytes are at most `limit` (no more than that
    /// takes); returns how many went.
    @discardableResult
    static func evict(_ db: OpaquePointer, toBytes limit: Int) throws(SQLiteSink.SQLiteError) -> Int {
        var removed = 0
        while let bytes = Int(try strings(db, "SELECT bytes FROM response_cache_meta WHERE id = 1").first ?? ""), bytes > limit {
            let excess = bytes - limit
            var covered = 0
            var victims: [String] = []
            for row in try strings(db, oldestSQL) {
                let fields = row.split(separator: " ")
                guard fields.count == 2 else { continue }
                victims.append(String(fields[0]))
                covered += Int(fields[1]) ?? 0
                if covered >= excess { break }
            }
            if victims.isEmpty { break }
            let delete = try SQLite.prepare(db, "DELETE FROM response_cache WHERE key = ?1")
            defer { sqlite3_finalize(delete) }
            for key in victims {
                sqlite3_bind_text(delete, 1, key, -1, SQLite.transient)
                let rc = sqlite3_step(delete)
                sqlite3_reset(delete)
                guard rc == SQLITE_DONE else { throw SQLiteSink.SQLiteError(operation: "evicting the oldest answers", code: rc, message: String(cString: sqlite3_errmsg(db))) }
            }
            removed += victims.count
        }
        return removed
    }

    /// Writes the pending group, adds this run's hits to the file's count and closes the file;
    /// throws the first write or read that failed.
    public func finish() async throws {
        try connection.withLock { c throws(SQLiteSink.SQLiteError) in
            guard let open = c else { return }
            defer {
                open.close()
                c = nil
            }
            write(open)
            Self.endSnapshot(open)
            if open.hits > 0 {
                do throws(SQLiteSink.SQLiteError) {
                    try SQLite.execute(open.db, "UPDATE response_cache_meta SET hits = hits + \(open.hits) WHERE id = 1", operation: "counting hits")
                } catch {
                    open.remember(error)
                }
            }
            // PASSIVE: never waits for another run still reading the file.
            _ = sqlite3_exec(open.db, "PRAGMA wal_checkpoint(PASSIVE)", nil, nil, nil)
            if let failure = open.failure { throw failure }
        }
    }

    /// Answers given by this store so far.
    public var hits: Int { connection.withLock { $0?.hits ?? 0 } }
}
