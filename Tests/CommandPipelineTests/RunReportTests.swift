@testable import CommandPipeline
@testable import CommandPipelineReport
import Testing

/// `RunReport` folds result records; every figure here is worked out by hand from the records.
@Suite struct RunReportTests {
    /// A succeeded record answered by `model`.
    static func succeeded(
        _ id: String, model: String, input: Int, output: Int, cached: Int = 0, usd: Double?, totalMs: Double, retries: Int = 0, waitMs: Double = 0,
        fallback: Bool = false, calls: Int = 1, cache: String = "null", uploads: (Int, Int) = (0, 0), batch: Bool = false
    ) -> String {
        let cost = usd.map { #"{"usd":\#($0),"requests":[{"request":"call","model":"\#(model)","call_index":0,"usd":\#($0)}]}"# } ?? "null"
        let callList = (0..<calls).map { #"{"call_index":\#($0),"attempts":1,"retry_wait_ms":0.0,"cache_bypassed":false}"# }.joined(separator: ",")
        return #"{"id":"\#(id)","index":0,"status":"succeeded","responses":[{"call_index":0,"text":"x","model":"\#(model)","finish_reason":"stop","usage":{"prompt_tokens":\#(input),"completion_tokens":\#(output),"total_tokens":\#(input + output),"cached_tokens":\#(cached)}}],"#
            + #""usage":{"prompt_tokens":\#(input),"completion_tokens":\#(output),"total_tokens":\#(input + output),"cached_tokens":\#(cached)},"#
            + #""telemetry":{\#(batch ? #""batch":true,"# : "")"provider":"p","used_fallback":\#(fallback),"primary_error":null,"retries":\#(retries),"retry_wait_ms":\#(waitMs),"calls":[\#(callList)],"#
            + #""durations_ms":{"upload":0,"cache":0,"generate":\#(totalMs),"total":\#(totalMs)},"uploads":{"performed":\#(uploads.0),"reused":\#(uploads.1),"skipped":0},"cache":\#(cache),"token_validation":null,"cost":\#(cost)},"metadata":{}}"#
    }

    /// A failed record with no answer.
    static func failed(_ id: String, kind: String, message: String, totalMs: Double, retries: Int = 0, calls: Int = 1) -> String {
        let callList = (0..<calls).map { #"{"call_index":\#($0),"attempts":\#(retries + 1),"retry_wait_ms":0.0,"cache_bypassed":\#($0 == 0 ? "true" : "false")}"# }.joined(separator: ",")
        return #"{"id":"\#(id)","index":1,"status":"failed","error":{"kind":"\#(kind)","message":"\#(message)","path":null,"provider":"p","retryable":true},"#
            + #""telemetry":{"provider":"p","used_fallback":false,"primary_error":null,"retries":\#(retries),"retry_wait_ms":0.0,"calls":[\#(callList)],"#
            + #""durations_ms":{"upload":0,"cache":0,"generate":\#(totalMs),"total":\#(totalMs)},"uploads":{"performed":0,"reused":0,"skipped":0},"cache":null,"token_validation":null,"cost":null},"metadata":{}}"#
    }

    static func fold(_ lines: [String]) -> RunReport {
        var report = RunReport()
        for (i, line) in lines.enumerated() { report.add(line: Array(line.utf8), source: "r.jsonl", line: i + 1) }
        return report
    }

    @Test func totalsAndRowsAddUpToHandComputedFigures() throws {
        let report = Self.fold([
            Self.succeeded("a", model: "alpha", input: 10, output: 20, cached: 4, usd: 0.25, totalMs: 3, retries: 1, waitMs: 500,
                           cache: #"{"id":"c1","key":"k","created":true,"reused":false,"kind":"stored","token_count":100}"#, uploads: (2, 0)),
            Self.succeeded("b", model: "alpha", input: 5, output: 7, usd: 0.5, totalMs: 150, fallback: true, calls: 2,
                           cache: #"{"id":"c1","key":"k","created":false,"reused":true,"kind":"stored","token_count":100}"#, uploads: (0, 2)),
            Self.succeeded("c", model: "beta", input: 1, output: 1, usd: nil, totalMs: 7_000, batch: true),
            Self.failed("d", kind: "timeout", message: "call timed out", totalMs: 40, retries: 2),
            Self.failed("e", kind: "rate_limited", message: "429", totalMs: 0.5, calls: 0),
            Self.failed("f", kind: "timeout", message: "again", totalMs: 41),
            "",
        ])
        let t = report.totals
        #expect(t.commands == 6 && t.succeeded == 3 && t.failed == 3)
        #expect(t.fallbacks == 1)
        #expect(t.calls == 1 + 2 + 1 + 1 + 0 + 1)
        #expect(t.retries == 1 + 2)
        #expect(t.retryWaitMs == 500)
        #expect(t.inputTokens == 16 && t.outputTokens == 28 && t.cachedTokens == 4)
        #expect(abs(t.costUSD - 0.75) < 1e-12)
        #expect(t.pricedCommands == 2)
        #expect(abs(t.commandMs - (3 + 150 + 7_000 + 40 + 0.5 + 41)) < 1e-9)
        #expect(t.batchCommands == 1)
        #expect(report.badLineCount == 0, "a blank line is not a bad one")

        let rows = report.rows
        #expect(rows.map(\.model) == ["alpha", "beta"], "sorted; failures before any answer are in no row")
        let alpha = rows[0], beta = rows[1]
        #expect(alpha.commands == 2 && alpha.calls == 3 && alpha.succeeded == 2 && alpha.failed == 0 && alpha.retries == 1)
        #expect(alpha.inputTokens == 15 && alpha.outputTokens == 27 && alpha.cachedTokens == 4)
        #expect(abs(alpha.costUSD - 0.75) < 1e-12)
        #expect(beta.costUSD == 0 && beta.commands == 1)
        #expect(report.failedBeforeAnswer.map(\.kind) == ["timeout", "rate_limited"])
        #expect(report.failedBeforeAnswer.map(\.count) == [2, 1], "listed by kind, the most frequent first")
        #expect(report.failures.map(\.count).reduce(0, +) == 3, "and counted in failures by kind")
        // Bins: [<1, <2, <5, <10, <20, <50, <100, <200, <500, <1000, <2000, <5000, <10000, …]
        #expect(alpha.latencyBins[2] == 1 && alpha.latencyBins[7] == 1 && alpha.latencyBins.reduce(0, +) == 2)
        #expect(beta.latencyBins[12] == 1)
        // Percentiles of the commands' times within the histogram's 1/32 (alpha: 3 ms and 150 ms).
        let p99 = Double(alpha.p99.components.attoseconds) / 1e15 + Double(alpha.p99.components.seconds) * 1000
        #expect(abs(p99 - 150) / 150 <= 1.0 / 32)
        let p50 = Double(alpha.p50.components.attoseconds) / 1e15
        #expect(abs(p50 - 3) / 3 <= 1.0 / 32)

        let failures = report.failures
        #expect(failures.map(\.kind) == ["timeout", "rate_limited"], "the most frequent first")
        #expect(failures[0].count == 2 && failures[0].samples == ["call timed out", "again"])

        let c = report.cache
        #expect(c.uploadsPerformed == 2 && c.uploadsReused == 2 && c.cachesCreated == 1 && c.cachesReused == 1)
        #expect(c.cacheBypassed == 2 && c.cachedTokens == 4)
    }

    @Test func linesThatAreNotResultsAreCountedAndTheFirstNamed() {
        var lines = [Self.succeeded("a", model: "m", input: 1, output: 1, usd: 0.1, totalMs: 1)]
        lines += ["{\"id\":\"x\",\"status\":\"valid\"}", "[1,2]", "{\"status\":\"succeeded\"", "not json"]
        lines += (0..<30).map { _ in "{}" }
        let report = Self.fold(lines)
        #expect(report.totals.commands == 1)
        #expect(report.badLineCount == 34)
        #expect(report.badLines.count == RunReport.namedBadLines)
        #expect(report.badLines[0].line == 2 && report.badLines[0].problem.contains("status"))
        #expect(report.badLines[1].problem.contains("array"))
        #expect(report.badLines[2].problem.hasPrefix("not JSON"))
        #expect(report.badLines.allSatisfy { $0.source == "r.jsonl" })
    }

    @Test func rowsKindsAndSamplesAreBounded() {
        var report = RunReport()
        for i in 0..<(RunReport.maxRows + 5) {
            report.add(line: Array(Self.succeeded("\(i)", model: "m\(i)", input: 1, output: 1, usd: nil, totalMs: 1).utf8), source: "s", line: i + 1)
        }
        for i in 0..<(RunReport.maxKinds + 3) {
            for n in 0..<5 {
                report.add(line: Array(Self.failed("f\(i)-\(n)", kind: "k\(i)", message: String(repeating: "x", count: 1000), totalMs: 1).utf8), source: "s", line: 1)
            }
        }
        let rows = report.rows
        #expect(rows.count == RunReport.maxRows + 1)
        #expect(rows.last?.others == true && rows.last?.commands == 5, "new pairs share the others row")
        #expect(report.failedBeforeAnswer.reduce(0) { $0 + $1.count } == 5 * (RunReport.maxKinds + 3), "failures before any answer are in no row")
        let failures = report.failures
        #expect(failures.count == RunReport.maxKinds + 1)
        #expect(failures.first { $0.kind == "other" }?.count == 15)
        #expect(failures.allSatisfy { $0.samples.count <= RunReport.samplesPerKind && $0.samples.allSatisfy { $0.count == RunReport.sampleCharacters } })
    }

    @Test func absurdNumbersNeitherTrapNorPoisonTheSums() {
        let huge = #"{"id":"h","index":0,"status":"succeeded","responses":[],"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":-5,"total_tokens":1,"cached_tokens":1e300},"telemetry":{"provider":"p","retries":9223372036854775807,"retry_wait_ms":1e308,"calls":[],"durations_ms":{"total":1e308},"cost":{"usd":"NaN"}}}"#
        let report = Self.fold([huge, huge])
        #expect(report.totals.inputTokens == Int.max, "saturates")
        #expect(report.totals.outputTokens == 0 && report.totals.cachedTokens == 0)
        #expect(report.totals.retries == Int.max)
        #expect(report.totals.retryWaitMs == 0 && report.totals.commandMs == 0 && report.totals.costUSD == 0)
    }

    @Test func rowsFromTheRunsMetricsKeepTheirFigures() {
        let snapshot = MetricsSnapshot(rows: [
            MetricsSnapshot.Row(
                provider: "mock", model: "a", others: false, calls: 4, succeeded: 3, failures: [("timeout", 1)], retries: 2, inputTokens: 10,
                cachedTokens: 1, outputTokens: 20, p50: .milliseconds(5), p95: .milliseconds(9), p99: .milliseconds(10)),
        ])
        let rows = RunReport(metrics: snapshot).rows
        #expect(rows.count == 1)
        #expect(rows[0].calls == 4 && rows[0].succeeded == 3 && rows[0].failures == ["timeout": 1] && rows[0].retries == 2)
        #expect(rows[0].p50 == .milliseconds(5) && rows[0].p95 == .milliseconds(9) && rows[0].p99 == .milliseconds(10))
    }

    /// Input decides neither the size of a row nor of a name: 100,000 distinct error kinds fold
    /// into `maxKinds` kinds and "other" in the row as in `failures`, and a 1 MB model, provider
    /// or kind name is cut to `nameCharacters` scalars (a single huge character too).
    @Test func distinctKindsAndHugeNamesStayBounded() {
        var report = RunReport()
        for i in 0..<100_000 {
            report.add(line: Array(#"{"status":"failed","error":{"kind":"k\#(i)","message":"m"},"telemetry":{"provider":"p"}}"#.utf8), source: "s", line: i + 1)
        }
        let huge = String(repeating: "m", count: 1 << 20), combining = "e" + String(repeating: "\u{301}", count: 1 << 18)
        report.add(line: Array(Self.succeeded("h", model: huge, input: 1, output: 1, usd: nil, totalMs: 1).utf8), source: "s", line: 1)
        report.add(line: Array(Self.succeeded("c", model: combining, input: 1, output: 1, usd: nil, totalMs: 1).utf8), source: "s", line: 2)
        report.add(line: Array(#"{"status":"failed","error":{"kind":"\#(huge)","message":"\#(combining)"},"telemetry":{"provider":"\#(huge)"}}"#.utf8), source: "s", line: 3)
        let rows = report.rows
        #expect(report.totals.commands == 100_003)
        #expect(rows.count == 2, "p/huge, p/combining: failures before any answer are in no row")
        let before = Dictionary(uniqueKeysWithValues: report.failedBeforeAnswer.map { ($0.kind, $0.count) })
        #expect(before.count == RunReport.maxKinds + 1, "\(before.count) kinds before any answer")
        #expect(before["other"] == 100_000 - RunReport.maxKinds + 1, "the huge kind counts as other too")
        #expect(report.failedBeforeAnswer.reduce(0) { $0 + $1.count } == 100_001)
        #expect(report.failures.count == RunReport.maxKinds + 1 && report.failures.first?.kind == "other")
        #expect(rows.allSatisfy { $0.provider.unicodeScalars.count <= RunReport.nameCharacters && $0.model.unicodeScalars.count <= RunReport.nameCharacters })
        #expect(rows.contains { $0.model == String(repeating: "m", count: RunReport.nameCharacters) })
        #expect(rows.flatMap(\.failures.keys).allSatisfy { $0.unicodeScalars.count <= RunReport.nameCharacters })
        #expect(report.failures.allSatisfy { $0.samples.allSatisfy { $0.unicodeScalars.count <= RunReport.sampleCharacters } })
    }

    /// A row made from the run's metrics has no latency bins; adding a record for the same
    /// provider and model then fills bins rather than trapping.
    @Test func aRecordAddedToARowFromMetricsGetsBins() {
        let snapshot = MetricsSnapshot(rows: [
            MetricsSnapshot.Row(
                provider: "p", model: "a", others: false, calls: 4, succeeded: 4, failures: [], retries: 0, inputTokens: 10,
                cachedTokens: 0, outputTokens: 20, p50: .milliseconds(5), p95: .milliseconds(9), p99: .milliseconds(10)),
        ])
        var report = RunReport(metrics: snapshot)
        #expect(report.rows.first?.latencyBins == [])
        #expect(report.add(line: Array(Self.succeeded("x", model: "a", input: 1, output: 1, usd: nil, totalMs: 7).utf8), source: "s", line: 1) == nil)
        let row = report.rows.first
        #expect(report.rows.count == 1 && row?.calls == 5 && row?.commands == 1)
        var bins = [Int](repeating: 0, count: RunReport.binBoundsMs.count + 1)
        bins[3] = 1 // 7 ms: the bin at or above 5, below 10 (bins: below 1, 1–2, 2–5, 5–10, …)
        #expect(row?.latencyBins == bins)
    }
}
