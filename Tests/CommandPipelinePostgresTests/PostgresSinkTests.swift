import CommandPipeline
@testable import CommandPipelinePostgres
import Foundation
import PipelineTestSupport
import Synchronization
import Testing

/// A result record shaped like a `pipeline` result line (what the generated columns read).
private func record(_ id: String, index: Int, status: String = "succeeded", tokens: Int = 7, usd: Double? = 0.25, text: String = "ok") -> String {
    let cost = usd.map { #"{"usd":\#($0)}"# } ?? "null"
    return #"{"id":"\#(id)","index":\#(index),"status":"\#(status)","responses":[{"text":"\#(text)","model":"m-1"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":\#(tokens),"cached_tokens":0},"telemetry":{"provider":"mock","cost":\#(cost)}}"#
}

private func delivery(run: String, _ id: String, index: Int, record text: String? = nil) -> ResultDelivery {
    ResultDelivery(runID: run, commandID: id, index: index, status: .succeeded, record: Array((text ?? record(id, index: index)).utf8))
}

/// What the sink reported, in order.
private final class Reports: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    var hear: @Sendable (String) -> Void { { [self] line in lines.withLock { $0.append(line) } } }
    func count(_ fragment: String) -> Int { all.filter { $0.contains(fragment) }.count }
}

/// `sink.finish()`, bounded: a sink that never drains fails the test instead of hanging it.
private func finish(_ sink: PostgresSink, within seconds: Int = 120) async throws {
    try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            try await sink.finish()
            return true
        }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return false
        }
        let finished = try await group.next() ?? false
        group.cancelAll()
        if !finished { throw PostgresServer.Problem(description: "the sink did not finish within \(seconds) s") }
    }
}

private func sink(_ server: PostgresServer, table: String = "results", password: String? = nil, reports: Reports? = nil, maxBatch: Int = 1_000) throws -> PostgresSink {
    PostgresSink(
        target: try PostgresTarget.parse(server.url(table: table)), maxBatch: maxBatch,
        environment: ["PGPASSWORD": password ?? server.password], report: reports?.hear)
}

@Suite(.serialized) struct PostgresSinkTests {
    @Test func tenThousandResultsArriveExactlyOnceAndARerunWithTheSameRunIDReplacesThem() async throws {
        let server = try PostgresServer.start()
        // Straight to the sink (the CLI tests go through the dispatcher): its own batching and writer.
        let first = try sink(server)
        for i in 0..<10_000 { try await first.deliver(delivery(run: "run-1", "cmd-\(i)", index: i)) }
        try await finish(first)
        #expect(try server.psql("SELECT count(*), count(DISTINCT command_id), min(command_index), max(command_index) FROM results") == "10000|10000|0|9999")

        // The resumed run delivers every command again, one of them changed: still 10,000 rows.
        let again = try sink(server)
        for i in 0..<10_000 {
            try await again.deliver(delivery(run: "run-1", "cmd-\(i)", index: i, record: i == 42 ? record("cmd-42", index: 42, tokens: 99, usd: nil, text: "new") : nil))
        }
        try await finish(again)
        #expect(again.counts.written == 10_000 && again.counts.held == 0)
        #expect(try server.psql("SELECT count(*) FROM results") == "10000")
        // The generated columns read the record; a record without a cost has a NULL cost.
        #expect(try server.psql("SELECT provider, model, prompt_tokens, completion_tokens, total_tokens, cost_usd, status FROM results WHERE command_id = 'cmd-7'") == "mock|m-1|3|4|7|0.25|succeeded")
        #expect(try server.psql("SELECT total_tokens, cost_usd IS NULL, record->'responses'->0->>'text' FROM results WHERE command_id = 'cmd-42'") == "99|t|new")
        #expect(try server.psql("SELECT sum(total_tokens) FROM results") == String(9_999 * 7 + 99))
    }

    @Test func theServerStoppedMidRunAndStartedAgainGetsEveryResultAndTheFaultIsReportedOnce() async throws {
        let server = try PostgresServer.start()
        let reports = Reports()
        let sink = try sink(server, reports: reports)
        for i in 0..<500 { try await sink.deliver(delivery(run: "r", "c\(i)", index: i)) }
        try await waitUntil("the first 500 rows") { sink.counts.written == 500 }

        try server.stopServer()
        for i in 500..<1_000 { try await sink.deliver(delivery(run: "r", "c\(i)", index: i)) }
        try await waitUntil("the writer to fail three times") { sink.counts.failedAttempts >= 3 }
        #expect(sink.counts.held == 500)
        try server.startServer()

        try await finish(sink)
        let counts = sink.counts
        #expect(counts.written == 1_000 && counts.held == 0 && counts.dropped == 0 && counts.refused == 0, "\(counts)")
        #expect(try server.psql("SELECT count(*) FROM results") == "1000")
        // Once per kind of fault, however many attempts failed; then once that it recovered.
        let faults = reports.all.filter { $0.contains("retrying with backoff") }
        #expect(faults.count == 1, "\(reports.all)")
        #expect(reports.count("answers again") == 1, "\(reports.all)")
    }

    @Test func theDatabaseDownAtStartIsWaitedFor() async throws {
        let server = try PostgresServer.start()
        try server.stopServer()
        let reports = Reports()
        let sink = try sink(server, reports: reports)
        for i in 0..<50 { try await sink.deliver(delivery(run: "r", "c\(i)", index: i)) }
        try await waitUntil("a reported connection failure") { reports.count("retrying with backoff") == 1 }
        #expect(sink.counts.written == 0)
        try server.startServer()
        try await finish(sink)
        #expect(try server.psql("SELECT count(*) FROM results") == "50")
    }

    @Test func aWrongPasswordIsReportedOnceAndNeverPrinted() async throws {
        let server = try PostgresServer.start()
        let reports = Reports()
        let canary = "CANARY-pg-\(UUID().uuidString)"
        let sink = try sink(server, password: canary, reports: reports)
        try await sink.deliver(delivery(run: "r", "only", index: 0))
        try await waitUntil("three failed attempts") { sink.counts.failedAttempts >= 3 }
        // The run ends while the database still refuses: the end is abandoned at its timeout.
        let finishing = Task { try await sink.finish() }
        try await waitUntil("the writer to stay failing") { sink.counts.failedAttempts >= 4 }
        finishing.cancel()
        await #expect(throws: PostgresSink.Failure.self) { try await finishing.value }
        #expect(reports.count("password authentication failed") == 1, "\(reports.all)")
        #expect(reports.count("1 result never written") == 1, "\(reports.all)")
        #expect(!reports.all.joined().contains(canary))
        #expect(!sink.name.contains(canary))
    }

    @Test func aReadOnlyReplicaHoldsTheResultsUntilWritesAreAllowedAgain() async throws {
        let server = try PostgresServer.start()
        try server.psql("ALTER ROLE app SET default_transaction_read_only = on")
        let reports = Reports()
        let sink = try sink(server, reports: reports)
        for i in 0..<20 { try await sink.deliver(delivery(run: "r", "c\(i)", index: i)) }
        try await waitUntil("the read-only failure") { reports.count("read-only") == 1 }
        #expect(reports.count("25006") == 1, "the SQLSTATE is named: \(reports.all)")
        // Writable again; the sink's session was opened read-only, so it is ended and the sink reconnects.
        try server.psql(
            "SET default_transaction_read_only = off", "ALTER ROLE app RESET default_transaction_read_only",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pipeline'")
        try await finish(sink)
        #expect(try server.psql("SELECT count(*) FROM results") == "20")
        #expect(reports.count("answers again") == 1, "\(reports.all)")
    }

    @Test func aRowTheDatabaseRefusesIsDroppedAloneAndCounted() async throws {
        let server = try PostgresServer.start()
        let reports = Reports()
        let sink = try sink(server, reports: reports)
        // jsonb cannot hold \u0000: the batch fails, is retried row by row, and only that row is dropped.
        try await sink.deliver(delivery(run: "r", "a", index: 0))
        try await sink.deliver(delivery(run: "r", "nul", index: 1, record: record("nul", index: 1, text: #"x\u0000y"#)))
        try await sink.deliver(delivery(run: "r", "c", index: 2))
        // Two commands with one id in a batch: the later one wins (one upsert cannot touch a row twice).
        try await sink.deliver(delivery(run: "r", "a", index: 3, record: record("a", index: 3, tokens: 11)))
        await #expect(throws: PostgresSink.Failure.self) { try await finish(sink) }
        #expect(sink.counts.refused == 1)
        #expect(try server.psql("SELECT string_agg(command_id || ':' || total_tokens, ',' ORDER BY command_id) FROM results") == "a:11,c:7")
        #expect(reports.count("refused the row of 'nul'") == 1, "\(reports.all)")
    }

    /// The rows go by COPY's text format: ids with a tab, a line feed, a carriage return and a
    /// backslash, and records whose JSON holds backslash escapes, arrive exactly as delivered.
    @Test func copyKeepsTabsLineBreaksAndBackslashesInIdsAndRecords() async throws {
        let server = try PostgresServer.start()
        let sink = try sink(server)
        let ids = ["tab\tid", "line\nfeed", "carriage\rreturn", #"back\slash"#, #"\N"#]
        for (i, id) in ids.enumerated() {
            try await sink.deliver(delivery(run: "esc", id, index: i, record: record("x", index: i, text: #"a\tb\\c \"q\" \u00e9"#)))
        }
        try await finish(sink)
        // Hex of each id as stored (psql's own output would escape them again), and the decoded text.
        let stored = try server.psql("SELECT string_agg(encode(convert_to(command_id, 'UTF8'), 'hex'), ',' ORDER BY command_index) FROM results")
        let expected = ids.map { $0.utf8.map { String(format: "%02x", $0) }.joined() }.joined(separator: ",")
        #expect(stored == expected)
        #expect(try server.psql(#"SELECT count(*) FROM results WHERE record->'responses'->0->>'text' = E'a\tb\\c "q" é'"#) == "5")
        #expect(try server.psql("SELECT count(*) FROM results WHERE total_tokens = 7 AND provider = 'mock' AND model = 'm-1'") == "5", "the generated columns")
    }

    @Test func aBufferFullWhileTheDatabaseIsAwayDropsAndCounts() async throws {
        let server = try PostgresServer.start()
        try server.stopServer()
        let reports = Reports()
        let sink = PostgresSink(
            target: try PostgresTarget.parse(server.url()), maxBufferedBytes: 1 << 16, environment: ["PGPASSWORD": server.password], report: reports.hear)
        var dropped = 0
        for i in 0..<400 {
            do { try await sink.deliver(delivery(run: "r", "c\(i)", index: i)) } catch { dropped += 1 }
        }
        #expect(dropped > 0 && dropped < 400)
        #expect(sink.counts.dropped == dropped)
        #expect(reports.count("buffer is full") == 1, "\(reports.all)")
        try server.startServer()
        await #expect(throws: PostgresSink.Failure.self) { try await finish(sink) }
        #expect(try server.psql("SELECT count(*) FROM results") == String(400 - dropped))
    }
}

/// The COPY text the writer sends, byte for byte (the server test above cannot tell a wrong
/// escape from a right one: a batch the server refuses is retried row by row with parameters).
@Suite struct PostgresCopyTextTests {
    private func row(_ run: String, _ id: String, _ index: Int, _ status: ResultDelivery.Status, _ record: String) -> SinkRow {
        SinkRow(ResultDelivery(runID: run, commandID: id, index: index, status: status, record: Array(record.utf8)))
    }

    @Test func escapesBackslashTabLineFeedAndCarriageReturnAndKeepsTheLaterOfTwoRowsForOneCommand() {
        let rows = [
            row("r", "a\tb", 0, .succeeded, #"{"t":"x\ny"}"#),
            row("r", "c\nd\re", 1, .failed, "{}"),
            row("r", "a\tb", 2, .failed, "{\"v\":2}"),
        ]
        let text = String(decoding: PostgresSQL.copyText(rows), as: UTF8.self)
        #expect(text == "r\tc\\nd\\re\t1\tfailed\t{}\n" + "r\ta\\tb\t2\tfailed\t{\"v\":2}\n")
        let one = String(decoding: PostgresSQL.copyText([rows[0]]), as: UTF8.self)
        #expect(one == "r\ta\\tb\t0\tsucceeded\t{\"t\":\"x\\\\ny\"}\n")
    }

    /// The key that keeps the later of two rows is the run id and the command id apart: `ab`+`c`
    /// and `a`+`bc` are two commands, both kept. The index is written in decimal, whatever its size.
    @Test func runAndCommandIdsAreKeptApartAndTheIndexIsDecimal() {
        let rows = [row("ab", "c", 0, .succeeded, "{}"), row("a", "bc", Int.max, .succeeded, "{}"), row("", "", 1_234_567, .failed, "")]
        let text = String(decoding: PostgresSQL.copyText(rows), as: UTF8.self)
        #expect(text == "ab\tc\t0\tsucceeded\t{}\n" + "a\tbc\t\(Int.max)\tsucceeded\t{}\n" + "\t\t1234567\tfailed\t\n")
        var digits: [UInt8] = []
        PostgresSQL.appendDecimal(-42, to: &digits)
        PostgresSQL.appendDecimal(Int.min, to: &digits)
        #expect(String(decoding: digits, as: UTF8.self) == "-42\(Int.min)")
    }
}

/// "Report once" keys: the server going away mid-`COPY` (57P01), refusing connections while
/// it starts (57P03), a broken connection (08006) or a lost one are one fault, one line.
@Suite struct PostgresFailureKindTests {
    @Test func aServerGoingAwayIsOneKindHoweverItIsSpelled() {
        let spellings = [
            PostgresFailure(sqlState: "57P01", message: "terminating connection due to administrator command", connectionLost: false),
            PostgresFailure(sqlState: "57P03", message: "the database system is starting up", connectionLost: false),
            PostgresFailure(sqlState: "08006", message: "connection failure", connectionLost: false),
            PostgresFailure(sqlState: nil, message: "Connection refused", connectionLost: true),
        ]
        #expect(Set(spellings.map(\.kind)) == ["connection"])
        #expect(PostgresFailure(sqlState: "25006", message: "read-only transaction", connectionLost: false).kind == "25006")
        #expect(PostgresFailure(sqlState: "57014", message: "statement timeout", connectionLost: false).kind == "57014")
        #expect(PostgresFailure(sqlState: nil, message: "out of memory", connectionLost: false).kind == "client")
    }
}

@Suite struct PostgresTargetTests {
    @Test func parsesTheURLAndItsOptions() throws {
        let t = try PostgresTarget.parse("postgresql://app@db.internal:6543/runs?table=batch_results&sslmode=verify-full&password_env=RUNS_PW&connect_timeout=5")
        #expect(t == PostgresTarget(
            host: "db.internal", port: 6543, database: "runs", user: "app", table: "batch_results", sslMode: "verify-full",
            passwordEnvironmentVariable: "RUNS_PW", connectTimeoutSeconds: 5))
        #expect(t.description == "app@db.internal:6543/runs/batch_results")
        let plain = try PostgresTarget.parse("postgres://localhost/x")
        #expect(plain.port == 5432 && plain.table == "results" && plain.user == nil && plain.sslMode == nil)
    }

    @Test(arguments: [
        ("postgresql://app:hunter2@h/db", "must not carry a password"),
        ("mysql://h/db", "must be a postgresql:// URL"),
        ("postgresql://h", "must name one database"),
        ("postgresql://h/a/b", "must name one database"),
        ("postgresql://h:0/db", "port must be 1–65535"),
        ("postgresql://h/db?table=results;drop", "plain identifier"),
        ("postgresql://h/db?table=1abc", "plain identifier"),
        ("postgresql://h/db?table=\(String(repeating: "a", count: 64))", "plain identifier"),
        ("postgresql://h/db?sslmode=sometimes", "sslmode must be one of"),
        ("postgresql://h/db?connect_timeout=1", "connect_timeout must be"),
        ("postgresql://h/db?password_env=A-B", "password_env must name"),
        ("postgresql://h/db?tabel=x", "unknown option 'tabel'"),
        ("postgresql://h/db?table=a&table=b", "given twice"),
    ])
    func refusesWhatCannotBeUsed(url: String, message: String) {
        #expect {
            try PostgresTarget.parse(url)
        } throws: { error in
            let text = "\(error)"
            return text.contains(message) && !text.contains("hunter2")
        }
    }
}
