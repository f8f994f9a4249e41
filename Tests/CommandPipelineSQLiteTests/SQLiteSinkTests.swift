import CommandPipeline
import CommandPipelineSQLite
import CommandPipelineTesting
import Foundation
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

    /// Rows are committed in groups: after `maxBatch` rows at once, else by `commitDelay`
    /// (on the manual clock) even when no row follows. Another client sees only committed rows.
    @Test func rowsAreCommittedInGroupsAndByTheDelayAtTheLatest() async throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("grouped.db").path
        let clock = ManualClock()
        let sink = try SQLiteSink(path: path, maxBatch: 2, commitDelay: .seconds(1), clock: clock)
        for i in 0..<3 { try await sink.deliver(delivery(run: "g", "c\(i)", index: i, status: .succeeded, text: "t")) }
        #expect(sink.uncommittedRows == 1, "two rows made a full group")
        #expect(try readBack(path).count == 2)
        var polls = 0
        while clock.sleeperCount == 0 && polls < 1_000_000 { polls += 1; await Task.yield() }
        clock.advance(by: .seconds(1))
        polls = 0
        while sink.uncommittedRows > 0 && polls < 1_000_000 { polls += 1; await Task.yield() }
        #expect(sink.uncommittedRows == 0, "the delay committed the last row")
        #expect(try readBack(path).count == 3)
        try await sink.finish()
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
