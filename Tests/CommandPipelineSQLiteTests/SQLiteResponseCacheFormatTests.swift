import CommandPipeline
import CommandPipelineSQLite
import Foundation
import PipelineTestSupport
import Testing

/// The cache file's layout (format 2): rows in the order they were stored, found by the key's
/// 32 bytes; a file of format 1 is converted when opened, keeping its answers, ages and order.
@Suite struct SQLiteResponseCacheFormatTests {
    typealias Fixture = SQLiteResponseCacheTests

    /// Runs `script` with python3's sqlite3 on the file at `path` (argv[1]), then `arguments`.
    static func python(_ script: String, _ path: String, _ arguments: [String] = []) throws {
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, path] + arguments, timeout: 60)
        #expect(run.status == 0, "\(run.output)")
    }

    /// The message opening the cache at `path` is refused with ("" and an issue recorded when it opens).
    static func refusal(_ path: String, _ what: String) -> String {
        do {
            _ = try SQLiteResponseCache(path: path)
            Issue.record("\(what) was opened")
            return ""
        } catch {
            return error.message
        }
    }

    /// Format 1 as the pipeline of stop 37 created it (the fixture keeps that text as it was).
    static let version1 = """
        import sqlite3, sys
        db = sqlite3.connect(sys.argv[1])
        db.execute('PRAGMA auto_vacuum = INCREMENTAL')
        db.executescript('''
        CREATE TABLE response_cache_meta (id INTEGER PRIMARY KEY CHECK (id = 1), format TEXT NOT NULL, version INTEGER NOT NULL, bytes INTEGER NOT NULL, hits INTEGER NOT NULL);
        INSERT INTO response_cache_meta VALUES (1, 'commandpipeline-response-cache', 1, 0, 7);
        CREATE TABLE response_cache (key TEXT PRIMARY KEY, created_at REAL NOT NULL, bytes INTEGER NOT NULL, answer TEXT NOT NULL) WITHOUT ROWID;
        CREATE INDEX response_cache_by_age ON response_cache (created_at);
        CREATE TRIGGER IF NOT EXISTS response_cache_added AFTER INSERT ON response_cache
            BEGIN UPDATE response_cache_meta SET bytes = bytes + NEW.bytes WHERE id = 1; END;
        CREATE TRIGGER IF NOT EXISTS response_cache_removed AFTER DELETE ON response_cache
            BEGIN UPDATE response_cache_meta SET bytes = bytes - OLD.bytes WHERE id = 1; END;
        CREATE TRIGGER IF NOT EXISTS response_cache_replaced AFTER UPDATE ON response_cache
            BEGIN UPDATE response_cache_meta SET bytes = bytes - OLD.bytes + NEW.bytes WHERE id = 1; END;
        ''')
        rows = sys.argv[2:]
        for i in range(0, len(rows), 3):
            db.execute('INSERT INTO response_cache VALUES (?, ?, ?, ?)', (rows[i], float(rows[i + 1]), len(rows[i]) + len(rows[i + 2]), rows[i + 2]))
        db.commit()
        """

    static func stored(_ n: Int) -> String { String(decoding: CachedAnswer.encode(Fixture.answer(n)), as: UTF8.self) }

    @Test func aVersion1CacheIsConvertedKeepingItsAnswersAgesAndOrder() async throws {
        let path = try Fixture.path()
        // Stored at 100, 300 and 200 s: the oldest is answer 0, the newest answer 1.
        try Self.python(Self.version1, path, [
            Fixture.key(0).digest, "100", Self.stored(0), Fixture.key(1).digest, "300", Self.stored(1), Fixture.key(2).digest, "200", Self.stored(2),
        ])
        let cache = try SQLiteResponseCache(path: path)
        for n in 0..<3 { #expect(cache.answer(for: Fixture.key(n)) == Fixture.answer(n)) }
        cache.store(Fixture.answer(3), for: Fixture.key(3))
        try await cache.finish()

        let stats = try SQLiteResponseCache.statistics(path: path)
        #expect(stats.entries == 4 && stats.hits == 7 + 3)
        #expect(stats.bytes == (0..<4).reduce(0) { $0 + 32 + Self.stored($1).utf8.count }, "the key's 32 bytes and the answer, counted again")
        #expect(stats.oldest == Date(timeIntervalSince1970: 100))
        // The bound takes the oldest first: answer 0 (100 s), then answer 2 (200 s).
        let each = stats.bytes / 4
        let (removed, left) = try SQLiteResponseCache.prune(path: path, maxBytes: 2 * each + each / 2)
        #expect(removed == 2 && left.entries == 2)
        let reader = try SQLiteResponseCache(path: path)
        #expect(reader.answer(for: Fixture.key(0)) == nil && reader.answer(for: Fixture.key(2)) == nil)
        #expect(reader.answer(for: Fixture.key(1)) == Fixture.answer(1) && reader.answer(for: Fixture.key(3)) == Fixture.answer(3))
        try await reader.finish()
        try Self.python(
            "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); v=db.execute('SELECT version FROM response_cache_meta').fetchone()[0]; t=[r[0] for r in db.execute(\"SELECT name FROM sqlite_master WHERE type='table' ORDER BY name\")]; assert (v, t) == (2, ['response_cache', 'response_cache_meta']), (v, t)",
            path)
        // A pipeline of format 1 still running on the file: its text keys are refused (its run
        // reports a failed write), never stored where its eviction would look for them forever.
        try Self.python(
            """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            try:
                db.execute("INSERT INTO response_cache (key, created_at, bytes, answer) VALUES (?, 1, 2, 'x') ON CONFLICT (key) DO UPDATE SET answer = excluded.answer", (sys.argv[2],))
                raise SystemExit('a text key was stored')
            except sqlite3.IntegrityError as error:
                assert 'CHECK constraint failed' in str(error), error
            """, path, [Fixture.key(9).digest])
    }

    /// A conversion that fails is rolled back whole and named: the file stays as it was.
    @Test func aVersion1CacheThatCannotBeConvertedIsLeftAsItWas() throws {
        let path = try Fixture.path()
        try Self.python(Self.version1, path, [Fixture.key(0).digest, "100", Self.stored(0)])
        try Self.python("import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); db.execute('CREATE TABLE response_cache_version1 (x)'); db.commit()", path)
        let message = Self.refusal(path, "a format 1 cache that cannot be converted")
        #expect(message.contains("format version 1 that could not be converted") && message.contains("left as it was"), "\(message)")
        try Self.python(
            "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); assert db.execute('SELECT version FROM response_cache_meta').fetchone()[0] == 1; assert db.execute('SELECT count(*) FROM response_cache').fetchone()[0] == 1",
            path)
    }

    /// Rows are numbered up from the last: a file whose numbers are used up is refused.
    @Test func aCacheWhoseRowNumbersAreUsedUpIsRefused() async throws {
        let path = try Fixture.path()
        let cache = try SQLiteResponseCache(path: path)
        cache.store(Fixture.answer(1), for: Fixture.key(1))
        try await cache.finish()
        try Self.python("import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); db.execute('UPDATE response_cache SET id = 9223372036854775807'); db.commit()", path)
        #expect(Self.refusal(path, "a cache whose row numbers are used up").contains("row numbers are used up"))
    }

    /// Conversion runs the file's own triggers: a format 1 file holding code this pipeline did
    /// not create is refused before anything is converted.
    @Test func aVersion1CacheWithAPlantedTriggerIsRefusedUnconverted() throws {
        let path = try Fixture.path()
        try Self.python(Self.version1, path, [Fixture.key(0).digest, "100", Self.stored(0)])
        try Self.python("import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); db.execute('CREATE TRIGGER planted AFTER UPDATE ON response_cache_meta BEGIN DELETE FROM response_cache; END'); db.commit()", path)
        #expect(Self.refusal(path, "a format 1 cache with a planted trigger").contains("trigger planted"))
        try Self.python("import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); assert db.execute('SELECT version FROM response_cache_meta').fetchone()[0] == 1", path)
    }

    /// Sizes in a file are not trusted: absurd ones make eviction take what they say, not trap
    /// (adding them up saturates).
    @Test func absurdSizesInAFileDoNotTrapTheEviction() async throws {
        let path = try Fixture.path()
        let cache = try SQLiteResponseCache(path: path, maxBatch: 1)
        for n in 0..<3 { cache.store(Fixture.answer(n), for: Fixture.key(n)) }
        try await cache.finish()
        try Self.python(
            "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); db.execute('DROP TRIGGER response_cache_replaced'); db.execute('UPDATE response_cache SET bytes = 9223372036854775807 WHERE id > (SELECT min(id) FROM response_cache)'); db.execute('UPDATE response_cache_meta SET bytes = 9000000000000000000'); db.execute(\"CREATE TRIGGER response_cache_replaced AFTER UPDATE ON response_cache\\n    BEGIN UPDATE response_cache_meta SET bytes = bytes - OLD.bytes + NEW.bytes WHERE id = 1; END\"); db.commit()",
            path)
        let (removed, left) = try SQLiteResponseCache.prune(path: path, maxBytes: 1 << 20)
        #expect(removed >= 1 && left.entries == 3 - removed)
    }

    /// A digest is stored as its 32 bytes, any other key as its text and 0xFF bytes (which no
    /// text holds) up to more than 32: a key spelling a digest's bytes is another key, with or
    /// without the 0xFF a 31-byte key is followed by.
    @Test func aDigestAndAKeySpellingItsBytesAreTwoKeys() async throws {
        let path = try Fixture.path()
        let keys = [
            String(repeating: "41", count: 32),  // a digest: the bytes of "AAA…A"
            String(repeating: "A", count: 32),
            String(repeating: "41", count: 31) + "ff",  // a digest: "AAA…A" (31) and 0xFF
            String(repeating: "A", count: 31),
            String(repeating: "4A", count: 32),  // not a digest's spelling: kept as text
        ]
        let cache = try SQLiteResponseCache(path: path, maxBatch: 1)
        for (n, key) in keys.enumerated() { cache.store(Fixture.answer(n), for: key) }
        try await cache.finish()
        let reader = try SQLiteResponseCache(path: path)
        for (n, key) in keys.enumerated() { #expect(reader.answer(for: key) == Fixture.answer(n), "\(key)") }
        #expect(reader.answer(for: String(repeating: "4a", count: 32)) == nil)
        try await reader.finish()
        let stats = try SQLiteResponseCache.statistics(path: path)
        #expect(stats.entries == keys.count)
        #expect(stats.bytes == [32, 33, 32, 33, 65].enumerated().reduce(0) { $0 + $1.element + Self.stored($1.offset).utf8.count })
    }

    /// An answer stored again for its key is the newest: the bound takes the others first.
    @Test func anAnswerStoredAgainIsTheNewest() async throws {
        let path = try Fixture.path()
        let size = 10_000
        let cache = try SQLiteResponseCache(path: path, maxBytes: 3 * size + 3 * 400, maxBatch: 1)
        for n in 0..<3 { cache.store(Fixture.answer(n, size: size), for: Fixture.key(n)) }
        try await cache.finish()
        let again = try SQLiteResponseCache(path: path, maxBytes: 3 * size + 3 * 400, maxBatch: 1)
        again.store(Fixture.answer(10, size: size), for: Fixture.key(0))
        again.store(Fixture.answer(3, size: size), for: Fixture.key(3))
        try await again.finish()
        let reader = try SQLiteResponseCache(path: path)
        #expect(reader.answer(for: Fixture.key(0))?.text.hasPrefix("answer 10x") == true, "stored again: kept")
        #expect(reader.answer(for: Fixture.key(1)) == nil, "the oldest went")
        #expect(reader.answer(for: Fixture.key(2)) != nil && reader.answer(for: Fixture.key(3)) != nil)
        try await reader.finish()
        #expect(try SQLiteResponseCache.statistics(path: path).entries == 3)
    }
}
