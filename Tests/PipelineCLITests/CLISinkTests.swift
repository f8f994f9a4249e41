import Foundation
import Testing

/// `--sink` through the real binary: every written result line reaches each sink, byte for byte.
@Suite struct CLISinkTests {
    let input = """
        {"id":"a","model":"m","prompt":"hello"}
        {"id":"b","plan":{"calls":[]}}
        {"id":"c","model":"m","prompt":"world"}

        """

    /// Rows of `results` in a SQLite file, read with Python's sqlite3.
    func rows(_ path: String) throws -> [[String: Any]] {
        let script = """
            import json, sqlite3, sys
            rows = sqlite3.connect(sys.argv[1]).execute("SELECT run_id, command_id, status, record FROM results ORDER BY run_id, command_index").fetchall()
            print(json.dumps([dict(zip(["run_id", "command_id", "status", "record"], r)) for r in rows]))
            """
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, path], timeout: 60)
        #expect(result.status == 0, "\(result.output)")
        return (try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]]) ?? []
    }

    @Test func jsonlAndSQLiteSinksGetExactlyTheLinesOnStdout() async throws {
        let dir = try CLI.temporaryDirectory()
        let jsonl = dir.appendingPathComponent("copy.jsonl").path
        let db = dir.appendingPathComponent("results.db").path
        let run = try await CLI.run(["--sink", "jsonl:\(jsonl)", "--sink", "sqlite:\(db)@5", "--run-id", "night-1"], stdin: input)
        #expect(run.status == 1, "one command is invalid")
        #expect(run.lines.count == 3)
        #expect(try String(contentsOfFile: jsonl, encoding: .utf8) == run.stdout)
        let stored = try rows(db)
        #expect(stored.map { $0["command_id"] as? String } == ["a", "b", "c"])
        #expect(stored.map { $0["status"] as? String } == ["succeeded", "failed", "succeeded"])
        #expect(stored.map { $0["record"] as? String } == run.lines)
        #expect(Set(stored.compactMap { $0["run_id"] as? String }) == ["night-1"])
        #expect(run.stderr.contains("run id night-1; sinks: every result delivered"))

        // The same run resumed (same --run-id): rows are replaced, never duplicated; a new run adds its own.
        let resumed = try await CLI.run(["--sink", "sqlite:\(db)", "--run-id", "night-1", "--quiet"], stdin: input)
        #expect(resumed.status == 1)
        #expect(try rows(db).count == 3)
        let other = try await CLI.run(["--sink", "sqlite:\(db)", "--quiet"], stdin: input)
        #expect(other.status == 1)
        let all = try rows(db)
        #expect(all.count == 6)
        #expect(Set(all.compactMap { $0["run_id"] as? String }).count == 2, "a run without --run-id gets a fresh one")
    }

    /// With `--events`, stdout carries events; sinks get each command's plain result record:
    /// the `result` of its terminal event, byte for byte the line plain mode writes.
    @Test func withEventsSinksGetThePlainResultOfEachTerminalEvent() async throws {
        let dir = try CLI.temporaryDirectory()
        let jsonl = dir.appendingPathComponent("copy.jsonl").path
        let db = dir.appendingPathComponent("results.db").path
        let run = try await CLI.run(["--events", "--sink", "jsonl:\(jsonl)", "--sink", "sqlite:\(db)", "--run-id", "ev-1"], stdin: input)
        #expect(run.status == 1, "one command is invalid: \(run.stderr)")
        let terminals = run.records.filter { ["command_succeeded", "command_failed"].contains($0["type"] as? String) }
        #expect(terminals.count == 3)
        let plain = try await CLI.run(["--quiet"], stdin: input)
        // Events mode writes as commands finish: the sink file is in that order; sort by index.
        func index(_ line: Substring) -> Int { ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["index"] as? Int ?? -1 }
        let delivered = try String(contentsOfFile: jsonl, encoding: .utf8).split(separator: "\n").sorted { index($0) < index($1) }
        #expect(delivered.count == 3)
        // Durations differ between runs: compare the records without telemetry.
        func withoutTelemetry(_ line: Substring) -> NSDictionary? {
            guard var object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            object["telemetry"] = nil
            return object as NSDictionary
        }
        #expect(delivered.map(withoutTelemetry) == plain.stdout.split(separator: "\n").map(withoutTelemetry))
        // And each delivered line is exactly its terminal event's result.
        func canonical(_ object: Any?) -> Data? { object.flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) } }
        let results = terminals.sorted { ($0["index"] as? Int ?? -1) < ($1["index"] as? Int ?? -1) }.map { canonical($0["result"]) }
        #expect(results == delivered.map { canonical(try? JSONSerialization.jsonObject(with: Data($0.utf8))) })
        let stored = try rows(db)
        #expect(stored.map { $0["command_id"] as? String } == ["a", "b", "c"])
        #expect(stored.map { $0["status"] as? String } == ["succeeded", "failed", "succeeded"])
        #expect(stored.map { $0["record"] as? String } == delivered.map(String.init))
    }

    @Test func aFailingSinkIsReportedByNameAndChangesNoResult() async throws {
        let dir = try CLI.temporaryDirectory()
        let jsonl = dir.appendingPathComponent("copy.jsonl").path
        let plain = try await CLI.run(["--quiet"], stdin: input)
        let run = try await CLI.run(["--sink", "jsonl:/dev/full@1", "--sink", "jsonl:\(jsonl)@2"], stdin: input)
        #expect(run.status == plain.status)
        #expect(run.records.map { $0["id"] as? String } == ["a", "b", "c"])
        #expect(run.records.map { $0["status"] as? String } == plain.records.map { $0["status"] as? String })
        #expect(run.stderr.contains("sink jsonl(/dev/full) failed delivering 'a': cannot write to /dev/full: No space left on device"), "\(run.stderr)")
        #expect(run.stderr.contains("sinks: 3 failures"))
        #expect(try String(contentsOfFile: jsonl, encoding: .utf8) == run.stdout, "the sink after the failing one got every line")
    }

    /// 10,000 commands: every result arrives in the SQLite sink exactly once (its writer thread
    /// keeps up in batches; nothing is dropped at the dispatcher's queue or the sink's buffer).
    @Test func tenThousandResultsThroughTheSQLiteSinkArriveExactlyOnce() async throws {
        let dir = try CLI.temporaryDirectory()
        let db = dir.appendingPathComponent("many.db").path
        let commands = (0..<10_000).map { #"{"id":"c\#($0)","model":"m","prompt":"q \#($0)"}"# }.joined(separator: "\n") + "\n"
        let run = try await CLI.run(["--sink", "sqlite:\(db)", "--run-id", "ten-k"], stdin: commands)
        #expect(run.status == 0, "\(run.stderr.suffix(2_000))")
        #expect(run.lines.count == 10_000)
        #expect(run.stderr.contains("run id ten-k; sinks: every result delivered"), "\(run.stderr.suffix(2_000))")
        let script = """
            import sqlite3, sys
            print(sqlite3.connect(sys.argv[1]).execute(
                "SELECT count(*), count(DISTINCT command_id), min(command_index), max(command_index) FROM results WHERE run_id = 'ten-k'").fetchone())
            """
        let counted = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, db], timeout: 60)
        #expect(counted.output.trimmingCharacters(in: .whitespacesAndNewlines) == "(10000, 10000, 0, 9999)")
    }

    /// A sink behind the run: another process holds the database's write lock until every
    /// result has reached the jsonl sink before it, so the SQLite sink's buffer (1 MiB here)
    /// fills. stdout and the exit status are the run's own; the drops are reported on stderr as
    /// they happen, counted when the sink finishes, and in the closing summary; every row the
    /// sink says it wrote is in the database.
    @Test func aSinkBehindTheRunDropsBeyondItsBoundAndSaysHowMany() async throws {
        let dir = try CLI.temporaryDirectory()
        let db = dir.appendingPathComponent("behind.db").path
        let copy = dir.appendingPathComponent("copy.jsonl").path
        // The table first (as the sink makes it), so the lock holder only locks.
        #expect(try await CLI.run(["--sink", "sqlite:\(db)", "--quiet"], stdin: "").status == 0)
        let file = dir.appendingPathComponent("sinks.json").path
        try #"{"sinks": [{"kind": "jsonl", "target": "\#(copy)", "priority": 1}, {"kind": "sqlite", "target": "\#(db)", "priority": 2, "batch_size": 10000, "options": {"max_buffer_mb": 1}}]}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        let n = 10_000
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = [
            "python3", "-c",
            """
            import os, sqlite3, sys, time
            db = sqlite3.connect(sys.argv[1], isolation_level=None)
            db.execute("BEGIN IMMEDIATE")
            print("locked", flush=True)
            deadline = time.time() + 600
            def lines():
                try:
                    with open(sys.argv[2], "rb") as f: return f.read().count(b"\\n")
                except OSError: return 0
            while lines() < int(sys.argv[3]) and time.time() < deadline: time.sleep(0.05)
            db.execute("COMMIT")
            """,
            db, copy, String(n),
        ]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        defer { if holder.isRunning { holder.terminate() } }
        #expect(String(decoding: out.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("locked"))

        let commands = (0..<n).map { #"{"id":"c\#($0)","model":"m","prompt":"q \#($0)"}"# }.joined(separator: "\n") + "\n"
        let run = try await CLI.run(["--sinks", file, "--sink-timeout", "600", "--run-id", "behind"], stdin: commands)
        holder.waitUntilExit()
        #expect(run.status == 0, "the exit status is the run's own: \(run.stderr.suffix(2_000))")
        #expect(run.lines.count == n)
        #expect(try String(contentsOfFile: copy, encoding: .utf8) == run.stdout, "the jsonl sink got every line")
        #expect(run.stderr.contains("row not written: the sink's 1 MiB buffer is full (the database does not keep up)"), "\(run.stderr.suffix(2_000))")
        // The sink's closing count: "W rows written; D dropped at the 1 MiB buffer bound …[, F not written (the database refused them)]".
        let counts = #/(\d+) rows written; (\d+) dropped at the 1 MiB buffer bound(?: \(the database did not keep up\))?(?:, (\d+) not written \(the database refused them\))?/#
        let match = try #require(run.stderr.firstMatch(of: counts), "\(run.stderr.suffix(2_000))")
        let written = Int(match.1)!, dropped = Int(match.2)!, failed = match.3.flatMap { Int($0) } ?? 0
        #expect(dropped > 0 && written + dropped + failed == n, "every result is accounted for: \(written) + \(dropped) + \(failed)")
        #expect(try rows(db).count == written)
        let summary = try #require(run.stderr.firstMatch(of: #/run id behind; sinks: (\d+) failures \(see above\)/#))
        #expect(Int(summary.1)! >= dropped, "each drop is a failure in the summary")
    }

    @Test(arguments: [
        ("--sink=nope:x", "KIND:TARGET with KIND one of jsonl, webhook, sqlite"),
        ("--sink=jsonl:", "needs a file path after the colon"),
        ("--sink=sqlite:x.db@99999999", "priority after @ must be a whole number from -1000000 to 1000000"),
        ("--sink=jsonl:/no/such/dir/x.jsonl", "cannot open /no/such/dir/x.jsonl"),
        ("--sink=webhook:http://example.com/hook", "refusing to send results over plain http"),
        ("--run-id=has space", "a run id may hold only letters"),
        ("--sink-timeout=0", "needs a number of seconds"),
    ])
    func badSinkOptionsAreUsageErrors(_ argument: String, _ message: String) async throws {
        let run = try await CLI.run([argument], stdin: input)
        #expect(run.status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains(message), "\(run.stderr)")
    }

    @Test func sinkPrioritySyntax() async throws {
        let dir = try CLI.temporaryDirectory()
        // A target whose name ends in @DIGITS keeps it when a priority follows.
        let odd = dir.appendingPathComponent("x@7").path
        let run = try await CLI.run(["--sink", "jsonl:\(odd)@3", "--quiet"], stdin: input)
        #expect(run.status == 1)
        #expect(FileManager.default.fileExists(atPath: odd))
    }
}
