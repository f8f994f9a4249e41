import CommandPipeline
import CommandPipelineSQLite
import CSQLite
import CommandPipelineTesting
import Foundation
import Synchronization
import PipelineTestSupport
import Testing

/// Reads `path` back with Python's own sqlite3 module (a real SQLite client, not ours):
/// the rows of `results` ordered by run and index, as JSON.
private func readBack(_ path: String) throws -> [[String: Any]] {
    let script = """
        import json, sqlite3, sys
        db = sqlite3.connect(sys.argv[1])
        rows = db.execute("SELECT run_id, command_id, command_index, status, idempotency_key, record, "
                          "json_extract(record, '$.status') FROM results ORDER BY run_id, command_index").fetchall()
        print(json.dumps([dict(zip(["run_id", "command_id", "command_index", "status", "idempotency_key", "record", "record_status"], r)) for r in rows]))
        """
    let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, path], timeout: 60)
    guard result.status == 0, let rows = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]] else {
        throw ReadError(output: result.output)
    }
    return rows
}

private struct ReadError: Error, CustomStringConvertible {
    var output: String
    var description: String { "python3 could not read the database: \(output)" }
}

/// What a sink's `report` heard, in order.
private final class Reports: Sendable {
    private let heard = Mutex<[String]>([])
    var all: [String] { heard.withLock { $0 } }
    func hear(_ message: String) { heard.withLock { $0.append(message) } }
}

private func delivery(run: String, _ id: String, index: Int, status: ResultDelivery.Status, text: String) -> ResultDelivery {
    let record = #"{"id":"\#(id)","index":\#(index),"status":"\#(status.rawValue)","text":"\#(text)"}"#
    return ResultDelivery(runID: run, commandID: id, index: index, status: status, record: Array(record.utf8))
}

@Suite struct SQLiteSinkTests {
    @Test func upsertsOneRowPerRunAndCommandReadBackWithPythonsSQLite() async throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("results.db").path

        // First run: "b" fails.
        let first = SinkDispatcher(sinks: [try SQLiteSink(path: path)], clock: ManualClock())
        first.submit(delivery(run: "r1", "a", index: 0, status: .succeeded, text: "one"))
        first.submit(delivery(run: "r1", "b", index: 1, status: .failed, text: "broke"))
        #expect(await first.finish(within: .seconds(60)).isEmpty)

        // The resumed run keeps its run id and delivers "b" again, now succeeded; another run adds its own rows.
        let resumed = SinkDispatcher(sinks: [try SQLiteSink(path: path)], clock: ManualClock())
        resumed.submit(delivery(run: "r1", "b", index: 1, status: .succeeded, text: "fixed ✓"))
        resumed.submit(delivery(run: "r2", "a", index: 0, status: .succeeded, text: "other run"))
        #expect(await resumed.finish(within: .seconds(60)).isEmpty)

        let rows = try readBack(path)
        #expect(rows.count == 3, "no duplicate rows: \(rows)")
        #expect(rows.map { "\($0["run_id"]!)/\($0["command_id"]!)" } == ["r1/a", "r1/b", "r2/a"])
        #expect(rows[1]["status"] as? String == "succeeded")
        #expect(rows[1]["record_status"] as? String == "succeeded")
        #expect(rows[1]["record"] as? String == #"{"id":"b","index":1,"status":"succeeded","text":"fixed ✓"}"#)
        #expect(rows[1]["idempotency_key"] as? String == "r1/b")
        #expect(rows[0]["command_index"] as? Int == 0)
        // Durable at the end: finish checkpointed the log into the database file.
        let wal = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
        #expect(wal == 0)
    }

    /// 10,000 results through the dispatcher arrive exactly once, written by the sink's own
    /// thread in batches (one transaction each); a second run with the same run id replaces them.
    @Test func tenThousandResultsArriveExactlyOnceAndARerunWithTheSameRunIDReplacesThem() async throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("many.db").path
        for pass in 0..<2 {
            let sink = try SQLiteSink(path: path, maxBatch: 700)
            #expect(sink.deliversWithoutWaiting, "deliver only appends: the dispatcher calls it without a timed task")
            let dispatcher = SinkDispatcher(sinks: [sink], capacity: 20_000, clock: ManualClock())
            for i in 0..<10_000 {
                dispatcher.submit(delivery(run: "big", "c\(i)", index: i, status: .succeeded, text: "pass \(pass)"))
                // A command twice, next to itself (in one multi-row statement, or not): the later wins.
                if i == 3 { dispatcher.submit(delivery(run: "big", "c3", index: 3, status: .failed, text: "pass \(pass) again")) }
            }
            let failures = await dispatcher.finish(within: .seconds(600))
            #expect(failures.isEmpty, "\(failures.prefix(3))")
            let c = sink.counts
            #expect(c.written == 10_001 && c.dropped == 0 && c.failed == 0 && c.held == 0, "\(c)")
        }
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            print(db.execute("SELECT count(*), count(DISTINCT command_id), min(command_index), max(command_index), "
                             "sum(record LIKE '%pass 1%'), (SELECT status || ' ' || record FROM results WHERE command_id = 'c3') FROM results").fetchone())
            """
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, path], timeout: 60)
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines) == #"(10000, 10000, 0, 9999, 10000, 'failed {"id":"c3","index":3,"status":"failed","text":"pass 1 again"}')"#, "every row once, from the second run")
    }

    /// A writer held up by another connection's lock: `deliver` never waits; rows beyond the
    /// sink's byte bound (the batch being written counts against it) are dropped, the first drop
    /// says why, and every row is accounted for. A lock that outlives the busy timeout (a starved
    /// machine makes this run long) loses no row: the batch is written again once it is released.
    @Test func aWriterHeldUpByALockDropsBeyondItsBoundAndCountsEveryRow() async throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("locked.db").path
        let sink = try SQLiteSink(path: path, maxBufferedBytes: 64 << 10)
        var lock: OpaquePointer?
        #expect(sqlite3_open(path, &lock) == SQLITE_OK)
        #expect(sqlite3_exec(lock, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK)
        let text = String(repeating: "x", count: 1_000)
        var accepted = 0
        var messages: [String] = []
        for i in 0..<200 {
            do {
                try await sink.deliver(delivery(run: "l", "c\(i)", index: i, status: .succeeded, text: text))
                accepted += 1
            } catch {
                messages.append("\(error)")
            }
        }
        #expect(sqlite3_exec(lock, "COMMIT", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(lock)
        #expect(accepted > 0 && accepted < 100, "64 KiB holds about 60 rows of 1 KB: \(accepted)")
        #expect(messages.count == 200 - accepted)
        #expect(messages.first?.contains("the sink's 64 KiB buffer is full (the database does not keep up)") == true, "\(messages.first ?? "")")
        await #expect(throws: SQLiteSink.Failure.self) { try await sink.finish() }
        let c = sink.counts
        #expect(c.dropped == 200 - accepted)
        #expect(c.written == accepted && c.failed == 0 && c.held == 0, "\(c)")
        #expect(try readBack(path).count == c.written)
    }

    /// A lock held past the busy timeout (here 1 ms) fails the writer's transaction; the batch is
    /// held and written again once the lock is gone: no row is lost or counted as failed.
    @Test func aBatchThatMeetsALockIsWrittenAgainNotLost() async throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("contended.db").path
        let sink = try SQLiteSink(path: path)
        sink.setBusyTimeout(milliseconds: 1)
        var lock: OpaquePointer?
        #expect(sqlite3_open(path, &lock) == SQLITE_OK)
        #expect(sqlite3_exec(lock, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK)
        for i in 0..<10 { try await sink.deliver(delivery(run: "k", "c\(i)", index: i, status: .succeeded, text: "row \(i)")) }
        // Bounded: the writer meets the lock within its first pauses (50 ms, 100 ms, ...).
        var waited = 0
        while sink.lockRetries < 2 && waited < 120_000 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 10
        }
        #expect(sink.lockRetries >= 2, "the writer met the lock and tried again")
        #expect(sqlite3_exec(lock, "COMMIT", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(lock)
        try await sink.finish()
        let c = sink.counts
        #expect(c.written == 10 && c.failed == 0 && c.dropped == 0 && c.held == 0, "\(c)")
        #expect(try readBack(path).count == 10)
    }

    /// A batch the database refuses (here a trigger refuses one row) is rolled back whole: its
    /// rows are counted as failed and reported when it fails, with the batch's row count and
    /// command ids (not against the next row delivered, which is written); `finish` sums it up.
    @Test func aFailedBatchIsRolledBackCountedAndReportedWhenItFails() async throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("refusing.db").path
        try await SQLiteSink(path: path).finish()
        var db: OpaquePointer?
        #expect(sqlite3_open(path, &db) == SQLITE_OK)
        let trigger = "CREATE TRIGGER refuse BEFORE INSERT ON results WHEN NEW.command_id = 'boom' BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
        #expect(sqlite3_exec(db, trigger, nil, nil, nil) == SQLITE_OK)
        sqlite3_close(db)

        let reports = Reports()
        let sink = try SQLiteSink(path: path, report: reports.hear)
        sink.setBusyTimeout(milliseconds: 1)
        // Another connection's lock holds the writer back until all five rows are held: they go as one batch.
        var lock: OpaquePointer?
        #expect(sqlite3_open(path, &lock) == SQLITE_OK)
        #expect(sqlite3_exec(lock, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK)
        for (i, id) in ["c0", "c1", "boom", "c3", "c4"].enumerated() {
            try await sink.deliver(delivery(run: "f", id, index: i, status: .succeeded, text: "t"))
        }
        #expect(sqlite3_exec(lock, "COMMIT", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(lock)
        var polls = 0
        while sink.counts.failed == 0 && polls < 1_200 {
            polls += 1
            try await Task.sleep(for: .milliseconds(50))  // bounded: the writer is a thread of its own
        }
        // Only the refused row is lost: the batch went again row by row.
        #expect(sink.counts.failed == 1)
        #expect(reports.all.count == 1, "\(reports.all)")
        #expect(reports.all.first?.contains("a batch of 5 rows, 'c0' to 'c4': 1 not written, 'boom'") == true, "\(reports.all)")
        #expect(reports.all.first?.contains("refused by a trigger") == true, "\(reports.all)")
        // The next row is written; no failure is laid at its door.
        try await sink.deliver(delivery(run: "f", "after", index: 5, status: .succeeded, text: "t"))
        let error = try await #require(throws: SQLiteSink.Failure.self) { try await sink.finish() }
        #expect("\(error)".contains("5 rows written; 1 not written (the database refused them)"), "\(error)")
        #expect("\(error)".contains("refused by a trigger"), "\(error)")
        #expect(try readBack(path).map { $0["command_id"] as? String } == ["c0", "c1", "c3", "c4", "after"], "every row but the refused one is written")
        #expect(reports.all.count == 1, "\(reports.all)")
    }

    @Test func aPathThatCannotBeOpenedFailsWhenTheSinkIsMade() throws {
        let dir = try temporaryDirectory()
        #expect(throws: SQLiteSink.SQLiteError.self) { try SQLiteSink(path: dir.appendingPathComponent("no/such/dir/x.db").path) }
    }

    @Test func aDatabaseThatIsNotSQLiteIsRefused() throws {
        let dir = try temporaryDirectory(files: ["junk.db": String(repeating: "not a database ", count: 100)])
        #expect(throws: SQLiteSink.SQLiteError.self) { try SQLiteSink(path: dir.appendingPathComponent("junk.db").path) }
    }
}
