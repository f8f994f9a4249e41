import Foundation
import PipelineTestSupport
import Synchronization
import Testing

/// `count` mock commands as JSON Lines.
private func commands(_ count: Int, from start: Int = 0) -> String {
    (start..<(start + count)).map { #"{"id":"q\#($0)","model":"mock","prompt":"question \#($0)"}"# }.joined(separator: "\n") + "\n"
}

/// Result lines with the timings (which differ run to run) left out, each re-encoded with sorted keys.
private func comparable(_ stdout: String) -> [String] {
    stdout.split(separator: "\n").map { line in
        guard var object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return "not JSON: \(line)" }
        if var telemetry = object["telemetry"] as? [String: Any] {
            telemetry["durations_ms"] = nil
            object["telemetry"] = telemetry
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

private func environment(_ extra: [String: String]) -> [String: String] {
    ProcessInfo.processInfo.environment.merging(extra) { $1 }
}

@Suite(.serialized) struct PostgresCLITests {
    @Test func everyResultOfARunArrivesOnceAndStdoutIsUnchanged() async throws {
        let server = try PostgresServer.start()
        let input = commands(10_000)
        let plain = try await runPipeline(["--quiet"], stdin: input)
        let arguments = ["--run-id", "cli-run", "--sink", "postgres:" + server.url() + "@10"]
        let withSink = try await runPipeline(arguments, stdin: input, environment: environment(["PGPASSWORD": server.password]))
        #expect(withSink.status == 0, "\(withSink.stderr)")
        #expect(withSink.stderr.contains("sinks: every result delivered"), "\(withSink.stderr)")
        #expect(comparable(withSink.stdout) == comparable(plain.stdout))
        #expect(try server.psql("SELECT count(*), count(DISTINCT command_id), sum(total_tokens) FROM results WHERE run_id = 'cli-run'")
            == "10000|10000|\(plain.records.reduce(0) { $0 + (($1[path: "usage.total_tokens"] as? Int) ?? 0) })")

        // Resumed with the same run id: the rows are replaced, never added.
        let again = try await runPipeline(arguments, stdin: input, environment: environment(["PGPASSWORD": server.password]))
        #expect(again.status == 0)
        #expect(try server.psql("SELECT count(*) FROM results") == "10000")
    }

    @Test func theDatabaseStoppedMidRunAndStartedAgainMissesNothing() async throws {
        let server = try PostgresServer.start()
        let plain = try await runPipeline(["--quiet"], stdin: commands(10_000))

        let process = Process()
        process.executableURL = TestPaths.pipelineBinary
        process.arguments = ["--quiet", "--run-id", "mid", "--sink", "postgres:" + server.url(), "--sink-timeout", "120"]
        process.environment = environment(["PGPASSWORD": server.password])
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        let out = LineCollector(stdout.fileHandleForReading), err = LineCollector(stderr.fileHandleForReading)
        try process.run()
        // A wait that runs out fails the test; the run must not outlive it.
        defer { if process.isRunning { process.terminate() } }

        try stdin.fileHandleForWriting.write(contentsOf: Data(commands(5_000).utf8))
        try await waitUntil("the first rows in the table", within: 60) { (try? server.psql("SELECT count(*) FROM results")).flatMap(Int.init) ?? 0 > 0 }
        try server.stopServer()
        try stdin.fileHandleForWriting.write(contentsOf: Data(commands(5_000, from: 5_000).utf8))
        try stdin.fileHandleForWriting.close()
        // Every result is on stdout while the database is away: the sink holds what it could not write.
        try await waitUntil("10,000 result lines", within: 60) { out.lines == 10_000 }
        try server.startServer()
        try await waitUntil("the run to end", within: 120) { !process.isRunning && out.atEnd && err.atEnd }

        #expect(process.terminationStatus == 0, "\(err.text)")
        #expect(comparable(out.text) == comparable(plain.stdout))
        #expect(try server.psql("SELECT count(*), count(DISTINCT command_id) FROM results WHERE run_id = 'mid'") == "10000|10000")
        let faults = err.text.split(separator: "\n").filter { $0.contains("retrying with backoff") }
        #expect(faults.count == 1, "one line for the fault, however many attempts failed: \(err.text)")
        #expect(err.text.contains("answers again"), "\(err.text)")
    }

    @Test func aWrongPasswordIsOneClearLineAndTheExitStatusIsTheRunsOwn() async throws {
        let server = try PostgresServer.start()
        let canary = "CANARY-pw-\(UUID().uuidString)"
        let run = try await runPipeline(
            ["--run-id", "pw", "--sink", "postgres:" + server.url(extra: "&password_env=RUNS_PW"), "--sink-timeout", "2"], stdin: commands(3),
            environment: environment(["RUNS_PW": canary]))
        #expect(run.status == 0, "a sink's failure changes no exit status: \(run.stderr)")
        #expect(run.lines.count == 3)
        let stderrLines = run.stderr.split(separator: "\n")
        #expect(stderrLines.filter { $0.contains("password authentication failed") }.count == 1, "\(run.stderr)")
        #expect(stderrLines.contains { $0.contains("3 results never written") }, "\(run.stderr)")
        #expect(run.stderr.contains("sinks: 1 failure"), "\(run.stderr)")
        #expect(!run.stderr.contains(canary) && !run.stdout.contains(canary))
        #expect(try server.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'results'") == "0")
    }

    @Test func sinksFromAFileExpandTheEnvironment() async throws {
        let server = try PostgresServer.start()
        let dir = try temporaryDirectory(files: [
            "sinks.json": """
                {"sinks": [
                  {"kind": "postgres", "target": "postgresql://app@127.0.0.1:${TEST_PG_PORT}/postgres", "priority": 5, "batch_size": 7,
                   "timeout_seconds": 60, "options": {"table": "from_file", "password_env": "TEST_PG_PW"}},
                  {"kind": "jsonl", "target": "${TEST_OUT_DIR}/copy.jsonl"}
                ]}
                """
        ])
        let env = environment(["TEST_PG_PORT": String(server.port), "TEST_PG_PW": server.password, "TEST_OUT_DIR": dir.path])
        let run = try await runPipeline(["--sinks", dir.appendingPathComponent("sinks.json").path], stdin: commands(20), environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try server.psql("SELECT count(*) FROM from_file") == "20")
        let copy = try String(contentsOf: dir.appendingPathComponent("copy.jsonl"), encoding: .utf8)
        #expect(copy.split(separator: "\n").count == 20)
    }

    @Test func valuesFromTheEnvironmentNeverReachStderrAtRunTime() async throws {
        let server = try PostgresServer.start()
        let secret = "secretdb\(UUID().uuidString.prefix(8).lowercased())"
        let dir = try temporaryDirectory(files: [
            "sinks.json": #"{"sinks": [{"kind": "postgres", "target": "postgresql://app@127.0.0.1:${TEST_PG_PORT}/${TEST_SECRET_DB}"}]}"#
        ])
        // The database does not exist: the server's message names it, and the sink's name holds it.
        let env = environment(["TEST_PG_PORT": String(server.port), "TEST_SECRET_DB": secret, "PGPASSWORD": server.password])
        let run = try await runPipeline(["--sinks", dir.appendingPathComponent("sinks.json").path, "--sink-timeout", "1"], stdin: commands(2), environment: env)
        #expect(run.status == 0)
        #expect(run.stderr.contains("does not exist"), "\(run.stderr)")
        #expect(run.stderr.contains("<from the environment>"), "\(run.stderr)")
        #expect(!run.stderr.contains(secret), "\(run.stderr)")
    }

    @Test(arguments: [
        (#"{"sinks": [{"kind": "postgres", "target": "postgresql://app@h/${NOT_SET_ANYWHERE}"}]}"#, "sinks[0].target: environment variable 'NOT_SET_ANYWHERE' is not set"),
        (#"{"sinks": [{"kind": "jsonl", "target": "x.jsonl", "prority": 3}]}"#, "sinks[0].prority: unknown key"),
        (#"{"sinks": [{"kind": "jsonl", "target": "x.jsonl", "batch_size": 3}]}"#, "sinks[0].batch_size: a jsonl sink writes each line as it comes"),
        (#"{"sinks": [{"kind": "ftp", "target": "x"}]}"#, "sinks[0].kind: expected one of jsonl, webhook, sqlite, postgres"),
        (#"{"sinks": [{"kind": "sqlite", "target": "x.db", "batch_size": 0}]}"#, "sinks[0].batch_size: expected a whole number from 1 to 10000, got 0"),
        (#"{"sinks": [{"kind": "postgres", "target": "postgresql://h/db", "options": {"colour": "red"}}]}"#, "sinks[0].options.colour: unknown option"),
        (#"{"sinks": [{"kind": "jsonl", "target": "a"}], "sinks": []}"#, "not valid JSON"),
        (#"{"sinks": []}"#, "sinks: list 1 to 64 sinks, got 0"),
        // A value from the environment is never echoed, even where the message would show the value.
        (#"{"sinks": [{"kind": "postgres", "target": "postgresql://h/db", "options": {"table": "${TEST_SECRET_TABLE}"}}]}"#, "table must be a plain identifier"),
    ])
    func aBadSinksFileIsAUsageErrorNamingThePlace(file: String, message: String) async throws {
        let dir = try temporaryDirectory(files: ["sinks.json": file])
        let secret = "s3cr3t-value; DROP TABLE x"
        let run = try await runPipeline(["--sinks", dir.appendingPathComponent("sinks.json").path], stdin: commands(1), environment: environment(["TEST_SECRET_TABLE": secret]))
        #expect(run.status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains(message), "\(run.stderr)")
        #expect(!run.stderr.contains(secret), "\(run.stderr)")
    }
}

/// Reads a pipe on a thread of its own, counting lines as they arrive.
private final class LineCollector: Sendable {
    private let data = Mutex(Data())
    private let newlines = Atomic<Int>(0)
    private let ended = Atomic<Bool>(false)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty {
                    ended.store(true, ordering: .releasing)
                    return
                }
                data.withLock { $0.append(chunk) }
                newlines.add(chunk.reduce(0) { $0 + ($1 == 0x0a ? 1 : 0) }, ordering: .relaxed)
            }
        }
    }

    var lines: Int { newlines.load(ordering: .relaxed) }
    /// The writer closed its end and everything was read.
    var atEnd: Bool { ended.load(ordering: .acquiring) }
    var text: String { String(decoding: data.withLock { $0 }, as: UTF8.self) }
}
