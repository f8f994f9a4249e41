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
