import Foundation
import Testing

/// `--stats` and `--stats-json` through the binary: the figures add up to the result lines the
/// same run wrote.
@Suite struct CLIStatsTests {
    @Test func statsJSONAgreesWithTheResultsOfTheSameRun() throws {
        let dir = try CLI.temporaryDirectory()
        let stats = dir.appendingPathComponent("stats.json").path
        // One call per command, so each record is exactly one call.
        let input = (0..<120).map { #"{"id":"c\#($0)","model":"\#($0 % 3 == 0 ? "beta" : "alpha")","prompt":"question number \#($0)"}"# }.joined(separator: "\n")
        let run = try CLI.run(
            ["--stats", "--stats-json", stats, "--mock-faults", "retryable=0.3,fatal=0.1,seed=7", "--max-attempts", "2", "--quiet"], stdin: input)
        #expect(run.status == 1, "some commands fail: \(run.stderr)")
        try #require(run.records.count == 120)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [String: Any])
        let models = try #require(object["models"] as? [[String: Any]])
        #expect(models.map { $0["model"] as? String } == ["alpha", "beta"])
        for row in models {
            let model = row["model"] as? String
            let records = run.records.filter { ($0[path: "responses.0.model"] as? String ?? ($0["id"] as? String).map { Int($0.dropFirst())! % 3 == 0 ? "beta" : "alpha" }) == model }
            let succeeded = records.filter { $0["status"] as? String == "succeeded" }
            #expect(row["calls"] as? Int == records.count, "\(model ?? "?")")
            #expect(row["succeeded"] as? Int == succeeded.count)
            #expect(row["failed"] as? Int == records.count - succeeded.count)
            var kinds: [String: Int] = [:]
            for record in records where record["status"] as? String == "failed" { kinds[record[path: "error.kind"] as? String ?? "?", default: 0] += 1 }
            #expect((row["failures"] as? [String: Int]) == kinds)
            #expect(row["retries"] as? Int == records.reduce(0) { $0 + ($1[path: "telemetry.retries"] as? Int ?? 0) })
            #expect(row[path: "tokens.input"] as? Int == succeeded.reduce(0) { $0 + ($1[path: "usage.prompt_tokens"] as? Int ?? 0) })
            #expect(row[path: "tokens.output"] as? Int == succeeded.reduce(0) { $0 + ($1[path: "usage.completion_tokens"] as? Int ?? 0) })
            let p50 = row[path: "latency_ms.p50"] as? Double ?? -1, p99 = row[path: "latency_ms.p99"] as? Double ?? -1
            #expect(p50 >= 0 && p99 >= p50)
        }
        #expect(models.contains { ($0["failures"] as? [String: Int])?.isEmpty == false }, "the faults show up as failures")
        let (valid, report) = try CLI.validate(try String(contentsOfFile: stats, encoding: .utf8), against: "stats.schema.json")
        #expect(valid, "\(report)")
        // The table is on stderr, not stdout, one line per model under a header.
        let table = run.stderr.split(separator: "\n").filter { $0.hasPrefix("provider ") || $0.hasPrefix("mock ") }
        #expect(table.count == 3 && table[0].contains("p99 ms"), "\(run.stderr)")
        #expect(!run.stdout.contains("p99 ms"))
    }

    @Test func withoutStatsNothingIsCollectedOrPrinted() throws {
        let run = try CLI.run(["--quiet"], stdin: #"{"model":"m","prompt":"hi"}"#)
        #expect(run.status == 0)
        #expect(run.stderr.isEmpty)
    }

    @Test func anUnwritableStatsFileIsExit3() throws {
        let run = try CLI.run(["--stats-json", "/no/such/dir/stats.json", "--quiet"], stdin: #"{"model":"m","prompt":"hi"}"#)
        #expect(run.status == 3)
        #expect(run.stderr.contains("cannot write --stats-json"), "\(run.stderr)")
        #expect(run.records.count == 1, "the results were written before")
    }
}
