import CSQLite

/// The cache file's layout (format version 2), the statements that read and write it, and the
/// conversion of a file of version 1.
///
///     CREATE TABLE response_cache (
///         id INTEGER PRIMARY KEY,      -- the order answers were stored in: eviction takes the lowest
///         key BLOB NOT NULL UNIQUE,    -- `withStoredKey`: a digest's 32 bytes (a blob, never text)
///         created_at REAL NOT NULL,    -- when stored, seconds since 1970 (the TTL)
///         bytes INTEGER NOT NULL,      -- length of stored key and answer
///         answer TEXT NOT NULL)        -- CachedAnswer's JSON
///     CREATE TABLE response_cache_meta (id = 1, format, version, bytes, hits)  -- bytes kept by triggers
///
/// Why version 2: version 1 kept the answers in a table ordered by their key, a random digest,
/// so every answer a run stored went into a page of its own, and every few answers that page
/// split into three or four: ~2 pages written to the log per answer (the cost of a cold run at a
/// provider's rate: 39 µs of the writer's CPU an answer). Rows in the order they are stored fill
/// one page after the other; the key's index holds 32 bytes and a row number an entry, ~100 a
/// page: ~0.8 pages an answer, and the oldest answers are the first rows (Benchmarks/README, stop 38).
extension SQLiteResponseCache {
    static let format = "commandpipeline-response-cache"
    static let version = 2

    /// Created in one transaction, by whichever process comes first. (The triggers' text is the
    /// same as version 1's: `check` compares a file's triggers with these before converting it.)
    /// A key must be a blob: a pipeline of format 1 still running on a converted file binds text
    /// keys, which would never match a row here, and its eviction (`DELETE … WHERE key = text`)
    /// would then loop forever holding the write lock; the check makes its writes fail instead
    /// (reported when that run ends).
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
            id INTEGER PRIMARY KEY,
            key BLOB NOT NULL UNIQUE CHECK (typeof(key) = 'blob'),
            created_at REAL NOT NULL,
            bytes INTEGER NOT NULL,
            answer TEXT NOT NULL
        );
        CREATE TRIGGER IF NOT EXISTS response_cache_added AFTER INSERT ON response_cache
            BEGIN UPDATE response_cache_meta SET bytes = bytes + NEW.bytes WHERE id = 1; END;
        CREATE TRIGGER IF NOT EXISTS response_cache_removed AFTER DELETE ON response_cache
            BEGIN UPDATE response_cache_meta SET bytes = bytes - OLD.bytes WHERE id = 1; END;
        CREATE TRIGGER IF NOT EXISTS response_cache_replaced AFTER UPDATE ON response_cache
            BEGIN UPDATE response_cache_meta SET bytes = bytes - OLD.bytes + NEW.bytes WHERE id = 1; END;
        """

    static let selectSQL = "SELECT answer, created_at FROM response_cache WHERE key = ?1"
    /// A new answer for a key that has one replaces it and becomes the newest row (its `id` moves
    /// past the last), so eviction keeps taking the oldest: one statement, changing one answer
    /// (`REPLACE` would delete without firing the byte-counting trigger).
    static let upsertSQL = """
        INSERT INTO response_cache (key, created_at, bytes, answer) VALUES (?1, ?2, ?3, ?4)
        ON CONFLICT (key) DO UPDATE SET id = (SELECT max(id) FROM response_cache) + 1,
            created_at = excluded.created_at, bytes = excluded.bytes, answer = excluded.answer
        """
    /// The oldest answers, a group at a time, as `id bytes`.
    static let oldestSQL = "SELECT id || ' ' || bytes FROM response_cache ORDER BY id LIMIT 256"
    static let evictSQL = "DELETE FROM response_cache WHERE id = ?1"

    /// How `key` is stored: a `ResponseCacheKey` digest (64 lowercase hex digits) as its 32 bytes;
    /// any other string (a caller's own key) as its UTF-8 bytes followed by 0xFF bytes (no UTF-8
    /// text holds one) until it is longer than 32: never a digest's length, and the text is the
    /// form less its trailing 0xFF bytes, so two keys never share a form.
    static func withStoredKey<R>(_ key: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let utf8 = key.utf8
        if utf8.count == 64 {
            let decoded = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { bytes -> R? in
                var high: UInt8?
                var index = 0
                for c in utf8 {
                    let nibble: UInt8
                    switch c {
                    case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = c - UInt8(ascii: "0")
                    case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = c - UInt8(ascii: "a") + 10
                    default: return nil
                    }
                    if let h = high {
                        bytes[index] = h << 4 | nibble
                        index += 1
                        high = nil
                    } else {
                        high = nibble
                    }
                }
                return body(UnsafeRawBufferPointer(bytes))
            }
            if let decoded { return decoded }
        }
        var other = Array(utf8)
        repeat { other.append(0xFF) } while other.count <= 32
        return other.withUnsafeBytes(body)
    }

    /// Binds an answer to `upsertSQL`'s parameters (the key decoded once): the key's stored
    /// form, when it was stored, the bytes it counts (stored key and answer), the answer.
    static func bindUpsert(_ statement: OpaquePointer, key: String, createdAt: Double, answer: UnsafeBufferPointer<CChar>) -> Int32 {
        withStoredKey(key) { form in
            var rc = sqlite3_bind_blob(statement, 1, form.baseAddress, Int32(clamping: form.count), SQLite.transient)
            if rc == SQLITE_OK { rc = sqlite3_bind_double(statement, 2, createdAt) }
            if rc == SQLITE_OK { rc = sqlite3_bind_int64(statement, 3, Int64(form.count.addingSaturating(answer.count))) }
            if rc == SQLITE_OK { rc = sqlite3_bind_text(statement, 4, answer.baseAddress, Int32(clamping: answer.count), SQLite.transient) }
            return rc
        }
    }

    /// Binds `key`'s stored form to parameter `index` of `statement`.
    static func bindKey(_ statement: OpaquePointer, _ index: Int32, _ key: String) -> Int32 {
        withStoredKey(key) { sqlite3_bind_blob(statement, index, $0.baseAddress, Int32(clamping: $0.count), SQLite.transient) }
    }

    /// Converts a cache of version 1 (the same tables and triggers, the answers in a table keyed
    /// by the key's text) to this version in one transaction: its answers, their ages and its hit
    /// count are kept, in the order they were stored. Another process may have converted it since
    /// this one read the version: then nothing is done. The write lock is waited for longer than
    /// usual (`conversionWaitMilliseconds`): another process may be converting a large file.
    static func convertFromVersion1(_ db: OpaquePointer, path: String) throws {
        func unconvertible(_ error: SQLiteSink.SQLiteError) -> OpenError {
            if error.code & 0xff == SQLITE_FULL {
                return OpenError(message: "'\(path)' is a response cache of format version 1 that could not be converted to version \(version): the disk is full (converting takes about the file's size again until it ends; `pipeline cache prune` then gives the space back)")
            }
            if error.code & 0xff == SQLITE_BUSY {
                return OpenError(message: "the response cache '\(path)' (format version 1) stayed locked by another process while this one waited to convert it: \(error.message); try again when the other run ends")
            }
            return OpenError(message: "'\(path)' is a response cache of format version 1 that could not be converted to version \(version): \(error); it is left as it was. Give another path, or remove the file to start an empty cache")
        }
        sqlite3_busy_timeout(db, conversionWaitMilliseconds)
        defer { sqlite3_busy_timeout(db, SQLite.busyTimeoutMilliseconds) }
        do throws(SQLiteSink.SQLiteError) { try SQLite.execute(db, "BEGIN IMMEDIATE", operation: "begin") } catch { throw unconvertible(error) }
        do {
            // Read again under the write lock: another process may have converted it, or
            // changed its code, since this one looked.
            let found = try strings(db, "SELECT version FROM response_cache_meta WHERE id = 1").first ?? ""
            if found == String(version) {
                try SQLite.execute(db, "COMMIT", operation: "commit")
                return
            }
            guard found == "1" else { throw newerFormat(path, found) }
            try refuseForeignCode(db, path: path)
            // The old table keeps its index on `created_at` (it goes with the table): the copy
            // below reads in that order without a sort.
            try SQLite.execute(
                db,
                """
                DROP TRIGGER IF EXISTS response_cache_added; DROP TRIGGER IF EXISTS response_cache_removed;
                DROP TRIGGER IF EXISTS response_cache_replaced;
                ALTER TABLE response_cache RENAME TO response_cache_version1;
                \(schema)
                UPDATE response_cache_meta SET version = \(version), bytes = 0 WHERE id = 1;
                """, operation: "converting the response cache from format version 1")
            let read = try SQLite.prepare(db, "SELECT key, created_at, answer FROM response_cache_version1 ORDER BY created_at, key")
            defer { sqlite3_finalize(read) }
            let insert = try SQLite.prepare(db, upsertSQL)
            defer { sqlite3_finalize(insert) }
            while true {
                let rc = sqlite3_step(read)
                if rc == SQLITE_DONE { break }
                guard rc == SQLITE_ROW else { throw SQLiteSink.SQLiteError(operation: "reading a version 1 answer", code: rc, message: String(cString: sqlite3_errmsg(db))) }
                let key = sqlite3_column_text(read, 0).map { String(cString: $0) } ?? ""
                let answer = UnsafeBufferPointer(
                    start: sqlite3_column_text(read, 2).map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, count: Int(sqlite3_column_bytes(read, 2)))
                let bound = bindUpsert(insert, key: key, createdAt: sqlite3_column_double(read, 1), answer: answer)
                let stepped = bound == SQLITE_OK ? sqlite3_step(insert) : bound
                sqlite3_reset(insert)
                guard stepped == SQLITE_DONE else { throw SQLiteSink.SQLiteError(operation: "converting a version 1 answer", code: stepped, message: String(cString: sqlite3_errmsg(db))) }
            }
            try SQLite.execute(db, "DROP TABLE response_cache_version1; COMMIT", operation: "converting the response cache from format version 1")
        } catch {
            _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
            if let error = error as? SQLiteSink.SQLiteError { throw unconvertible(error) }
            throw error
        }
        // The old table's pages back to the file system (as `prune` does).
        _ = sqlite3_exec(db, "PRAGMA incremental_vacuum", nil, nil, nil)
    }

    /// How long a process waits for the write lock to convert a file of version 1: another
    /// process may be converting it (about 10 s for 100,000 answers).
    static let conversionWaitMilliseconds: Int32 = 300_000
}
