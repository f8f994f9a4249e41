import CommandPipeline
import CommandPipelineReport
import Foundation

/// `--stats` and `--stats-json FILE`: per-model figures (`RunReport` rows: the run's
/// `MetricsCollector`, or the results `pipeline report` read) as an aligned table on stderr and
/// as one JSON object (Design/schema/stats.schema.json).
enum StatsReport {
    static func milliseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    /// One line per provider and model, under a header.
    static func table(_ report: RunReport) -> String {
        let rows = report.rows
        let header = ["provider", "model", "calls", "ok", "failed", "retries", "in tok", "cached", "out tok", "p50 ms", "p95 ms", "p99 ms", "failures"]
        var lines = [header]
        for row in rows {
            lines.append([
                // Names come from input: one line each, control characters escaped.
                row.others ? "(others)" : StandardError.oneLine(row.provider), row.others ? "(others)" : StandardError.oneLine(row.model), "\(row.calls)", "\(row.succeeded)", "\(row.failed)", "\(row.retries)", "\(row.inputTokens)",
                "\(row.cachedTokens)", "\(row.outputTokens)", String(format: "%.1f", milliseconds(row.p50)),
                String(format: "%.1f", milliseconds(row.p95)), String(format: "%.1f", milliseconds(row.p99)),
                row.failures.isEmpty ? "-" : row.failures.sorted { $0.key < $1.key }.map { "\(StandardError.oneLine($0.key)) \($0.value)" }.joined(separator: ", "),
            ])
        }
        if rows.isEmpty { return "pipeline: stats: no calls were made\n" + responseCacheLine(report) }
        let unreported = rows.reduce(0) { $0.addingSaturating($1.unreportedCalls) }
        // Calls whose server said nothing of their usage are counted, never shown as zero tokens.
        let note = unreported == 0 ? "" : "pipeline: stats: \(unreported) call\(unreported == 1 ? "" : "s") did not report usage (the server sent none): the token counts are lower bounds\n"
        var widths = [Int](repeating: 0, count: header.count)
        for line in lines { for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) } }
        // Text columns left, numbers right, the failures last and unpadded.
        let numeric = Set(2..<12)
        return lines.map { row in
            row.enumerated().map { i, cell in
                if i == row.count - 1 { return cell }
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return numeric.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n" + note + responseCacheLine(report)
    }

    /// The response cache's line under the table, when the run used one (a hit is no call: the
    /// rows above count only the calls that were asked).
    static func responseCacheLine(_ report: RunReport) -> String {
        let counts = report.cache.responseCache
        guard counts.calls > 0 else { return "" }
        return "response cache: \(counts.hits) hit\(counts.hits == 1 ? "" : "s"), \(counts.misses) miss\(counts.misses == 1 ? "" : "es"), \(counts.stored) stored; \(counts.requestsSaved) request\(counts.requestsSaved == 1 ? "" : "s") saved\n"
    }

    /// With a `ledger` that priced something (or holds a budget), `"cost"`: the run's total at
    /// catalog prices, the same figure as the summary on stderr and the sum of the results'
    /// `telemetry.cost.usd`.
    static func json(_ report: RunReport, ledger: CostLedger? = nil, deployments: [Router.DeploymentStats] = []) -> [UInt8] {
        let models: [JSONValue] = report.rows.map { row in
            var failures = JSONObject()
            for (kind, count) in row.failures.sorted(by: { $0.key < $1.key }) { failures[kind] = .int(count) }
            var object: JSONObject = [
                "provider": .string(row.provider), "model": .string(row.model), "calls": .int(row.calls), "succeeded": .int(row.succeeded),
                "failed": .int(row.failed), "failures": .object(failures), "retries": .int(row.retries),
                "tokens": row.unreportedCalls == 0
                    ? ["input": .int(row.inputTokens), "cached": .int(row.cachedTokens), "output": .int(row.outputTokens)]
                    : ["input": .int(row.inputTokens), "cached": .int(row.cachedTokens), "output": .int(row.outputTokens), "unreported_calls": .int(row.unreportedCalls)],
                "latency_ms": [
                    "p50": .double(milliseconds(row.p50)), "p95": .double(milliseconds(row.p95)), "p99": .double(milliseconds(row.p99)),
                ],
            ]
            if row.others { object["others"] = .bool(true) }
            return .object(object)
        }
        var object: JSONObject = ["models": .array(models)]
        let counts = report.cache.responseCache
        if counts.calls > 0 {
            object["response_cache"] = [
                "hits": .int(counts.hits), "misses": .int(counts.misses), "stored": .int(counts.stored), "requests_saved": .int(counts.requestsSaved),
            ]
        }
        if !deployments.isEmpty { object["deployments"] = DeploymentsReport.json(deployments) }
        if let ledger, ledger.pricedCommands > 0 || ledger.limit != nil {
            var cost: JSONObject = [
                "usd": .double((ledger.spent * 1e9).rounded() / 1e9), "priced_commands": .int(ledger.pricedCommands),
                "unpriced_commands": .int(ledger.unpricedCommands),
            ]
            if ledger.unreportedCalls > 0 { cost["unreported_calls"] = .int(ledger.unreportedCalls) }
            if let limit = ledger.limit {
                cost["limit_usd"] = .double(limit)
                cost["refused_commands"] = .int(ledger.refused)
            }
            object["cost"] = .object(cost)
        } else if ledger == nil && report.totals.pricedCommands > 0 {
            // From results (`pipeline report`): their `telemetry.cost.usd` added up.
            let t = report.totals
            var cost: JSONObject = [
                "usd": .double((t.costUSD * 1e9).rounded() / 1e9), "priced_commands": .int(t.pricedCommands),
                "unpriced_commands": .int(max(0, t.commands - t.pricedCommands)),
            ]
            if t.unreportedCalls > 0 { cost["unreported_calls"] = .int(t.unreportedCalls) }
            object["cost"] = .object(cost)
        }
        return Array(JSONSerializer.serialize(.object(object)).utf8) + [0x0a]
    }
}
