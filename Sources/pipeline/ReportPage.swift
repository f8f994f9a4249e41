import CommandPipeline
import CommandPipelineReport
import Foundation

/// A `RunReport` as one self-contained HTML page: inline CSS and SVG, nothing fetched (no script,
/// font or image), printable, text that can be copied. Every text from input (model and provider
/// names, messages, file names, the title) goes through `escape`. Colours differ in lightness and
/// failures are hatched, so the page survives grayscale printing.
enum ReportPage {
    /// Text for HTML element content and attribute values: `& < > " '` as entities, control
    /// characters as visible `\u{XX}`, so nothing from input can open a tag or break a line.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case _ where scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029:
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func number(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    static func usd(_ amount: Double) -> String {
        amount >= 1 ? String(format: "$%.2f", amount) : String(format: "$%.6f", amount)
    }

    static func ms(_ d: Duration) -> String { String(format: "%.1f", StatsReport.milliseconds(d)) }

    static func modelName(_ row: RunReport.Row) -> String {
        row.others ? "(others)" : row.model.isEmpty ? "(no model named)" : escape(row.model)
    }

    static let style = """
    body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111;background:#fff;margin:24px auto;max-width:1100px;padding:0 16px}
    h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #bbb;padding-bottom:3px}
    .sub{color:#444;margin:0 0 16px}
    .tiles{display:flex;flex-wrap:wrap;gap:10px}
    .tile{border:1px solid #999;border-radius:4px;padding:8px 12px;min-width:120px}
    .tile b{display:block;font-size:20px}.tile span{color:#333;font-size:12px}
    table{border-collapse:collapse;width:100%;font-size:13px}
    th,td{border:1px solid #bbb;padding:3px 6px;text-align:right;vertical-align:top}
    th{background:#e8e8e8;white-space:nowrap}td.t,th.t{text-align:left}td.t{overflow-wrap:break-word}
    .bad{border:2px solid #000;padding:8px 12px;background:#f2f2f2}
    .charts{display:flex;flex-wrap:wrap;gap:18px}.chart{border:1px solid #ccc;padding:6px}
    .chart h3{font-size:13px;margin:0 0 4px;word-break:break-all}
    code{white-space:pre-wrap;word-break:break-all;font-size:12px}
    .muted{color:#555}
    @media print{body{margin:0;max-width:none}.chart{break-inside:avoid}}
    """

    static func html(_ report: RunReport, title: String, sources: [String]) -> String {
        let t = report.totals
        let rows = report.rows
        var h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>\(escape(title))</title>\n<style>\(style)</style></head><body>\n"
        h += "<h1>\(escape(title))</h1>\n<p class=\"sub\">From \(sources.map { "<code>\(escape($0))</code>" }.joined(separator: ", ")) · \(number(t.commands)) result\(t.commands == 1 ? "" : "s")\(t.batchCommands > 0 ? " (\(number(t.batchCommands)) from batch jobs)" : "")</p>\n"
        if report.badLineCount > 0 {
            h += "<div class=\"bad\" id=\"skipped\"><b>\(number(report.badLineCount)) line\(report.badLineCount == 1 ? "" : "s") skipped</b> (not result records; the figures below leave them out):<ul>"
            for bad in report.badLines { h += "<li><code>\(escape(bad.source)):\(bad.line)</code> — \(escape(bad.problem))</li>" }
            if report.badLineCount > report.badLines.count { h += "<li>… and \(number(report.badLineCount - report.badLines.count)) more</li>" }
            h += "</ul></div>\n"
        }
        // Totals.
        h += "<h2>Totals</h2>\n<div class=\"tiles\" id=\"totals\">"
        let tiles: [(String, String)] = [
            ("commands", number(t.commands)), ("succeeded", number(t.succeeded)), ("failed", number(t.failed)), ("fallbacks used", number(t.fallbacks)),
            ("calls", number(t.calls)), ("retries", number(t.retries)), ("input tokens", number(t.inputTokens)), ("cached tokens", number(t.cachedTokens)),
            ("output tokens", number(t.outputTokens)), ("cost at catalog prices", usd(t.costUSD)),
            ("command time (sum)", String(format: "%.1f s", t.commandMs / 1000)), ("waiting on retries", String(format: "%.1f s", t.retryWaitMs / 1000)),
        ]
        // Calls whose server did not report usage are counted, never shown as zero tokens.
        let unreported: [(String, String)] = t.unreportedCalls > 0 ? [("calls without reported usage", number(t.unreportedCalls))] : []
        for (label, value) in tiles + unreported { h += "<div class=\"tile\"><b>\(value)</b><span>\(label)</span></div>" }
        h += "</div>\n<p class=\"muted\">\(number(t.pricedCommands)) command\(t.pricedCommands == 1 ? "" : "s") priced; a model not in the catalog costs nothing here. \(t.unreportedCalls > 0 ? "Calls without reported usage are in neither the token counts nor the cost, which are lower bounds. " : "")Results carry no timestamps, so the run's wall time and its course over time are not shown (the run's summary on stderr has its wall time).</p>\n"

        // Per provider and model.
        h += "<h2>Per provider and model</h2>\n<table id=\"models\"><tr><th class=\"t\">provider</th><th class=\"t\">model</th><th>commands</th><th>calls</th><th>ok</th><th>failed</th><th>retries</th><th>in tok</th><th>cached</th><th>out tok</th><th>cost</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th class=\"t\">failures by kind</th></tr>\n"
        for row in rows {
            let failures = row.failures.sorted { $0.key < $1.key }.map { "\(escape($0.key)) \(number($0.value))" }.joined(separator: ", ")
            h += "<tr><td class=\"t\">\(row.others ? "(others)" : escape(row.provider))</td><td class=\"t\">\(modelName(row))</td><td>\(number(row.commands))</td><td>\(number(row.calls))</td><td>\(number(row.succeeded))</td><td>\(number(row.failed))</td><td>\(number(row.retries))</td>"
            h += "<td>\(number(row.inputTokens))</td><td>\(number(row.cachedTokens))</td><td>\(number(row.outputTokens))</td><td>\(usd(row.costUSD))</td><td>\(ms(row.p50))</td><td>\(ms(row.p95))</td><td>\(ms(row.p99))</td><td class=\"t\">\(failures.isEmpty ? "–" : failures)</td></tr>\n"
        }
        h += "</table>\n"
        let unanswered = report.failedBeforeAnswer
        if !unanswered.isEmpty {
            let count = unanswered.reduce(0) { $0.addingSaturating($1.count) }
            h += "<p id=\"unanswered\"><b>\(number(count)) command\(count == 1 ? "" : "s") failed before any model answered</b> (not in the table: there is no model to count \(count == 1 ? "it" : "them") under; see failures by kind): "
            h += unanswered.map { "\(escape($0.kind)) \(number($0.count))" }.joined(separator: ", ") + ".</p>\n"
        }
        h += "<p class=\"muted\">Latency is each command's own time (<code>telemetry.durations_ms.total</code>), retries and waits included; a command counts under the model that answered it.</p>\n"

        // Latency distribution per model.
        h += "<h2>Latency distribution per model</h2>\n<div class=\"charts\">"
        for row in rows where row.latencyBins.contains(where: { $0 > 0 }) {
            h += "<div class=\"chart\"><h3>\(escape(row.provider)) · \(modelName(row))</h3>\(histogram(row.latencyBins))</div>"
        }
        h += "</div>\n"

        // Tokens and cost per model.
        h += "<h2>Tokens and cost per model</h2>\n"
        h += bars(rows.map { (modelName($0), Double($0.inputTokens.addingReportingOverflow($0.outputTokens).overflow ? Int.max : $0.inputTokens + $0.outputTokens), number($0.inputTokens) + " in · " + number($0.outputTokens) + " out") }, fill: "#4a4a8a")
        h += bars(rows.map { (modelName($0), $0.costUSD, usd($0.costUSD)) }, fill: "#222")

        // Failures.
        h += "<h2>Failures by kind</h2>\n"
        let failures = report.failures
        if failures.isEmpty {
            h += "<p>No command failed.</p>\n"
        } else {
            h += "<table id=\"failures\"><tr><th class=\"t\">kind</th><th>commands</th><th class=\"t\">first messages</th></tr>\n"
            for f in failures {
                h += "<tr><td class=\"t\">\(escape(f.kind))</td><td>\(number(f.count))</td><td class=\"t\">\(f.samples.map { "<code>\(escape($0))</code>" }.joined(separator: "<br>"))</td></tr>\n"
            }
            h += "</table>\n"
        }

        // Cache effect.
        let c = report.cache
        h += "<h2>Cache effect</h2>\n<table id=\"cache\"><tr><th class=\"t\">what</th><th>count</th></tr>"
        for (label, value) in [
            ("files uploaded", c.uploadsPerformed), ("uploads reused", c.uploadsReused), ("context caches created", c.cachesCreated),
            ("context-cache hits (a cache reused)", c.cachesReused), ("commands that ran without the cache they asked for", c.uncached),
            ("calls retried without their cache", c.cacheBypassed), ("prompt tokens read from a provider cache", c.cachedTokens),
        ] {
            h += "<tr><td class=\"t\">\(label)</td><td>\(number(value))</td></tr>"
        }
        let r = c.responseCache
        if r.calls > 0 {
            for (label, value) in [
                ("response-cache hits (answered with no request)", r.hits), ("response-cache misses (asked, answer not kept)", r.misses),
                ("response-cache answers stored", r.stored), ("requests saved by the response cache", r.requestsSaved),
            ] {
                h += "<tr><td class=\"t\">\(label)</td><td>\(number(value))</td></tr>"
            }
            h += "</table>\n"
        } else {
            h += "</table>\n<p class=\"muted\">No call went through a response cache (<code>--response-cache</code>).</p>\n"
        }
        h += "</body></html>\n"
        return h
    }

    /// Bars of the latency bins (`RunReport.binBoundsMs`), counts above, bounds below.
    static func histogram(_ bins: [Int]) -> String {
        let width = 330, height = 150, top = 16, bottom = 30
        let most = max(1, bins.max() ?? 1)
        let step = Double(width - 10) / Double(bins.count)
        var s = "<svg width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"latency histogram\">"
        s += "<line x1=\"5\" y1=\"\(height - bottom)\" x2=\"\(width - 5)\" y2=\"\(height - bottom)\" stroke=\"#000\"/>"
        let labels = RunReport.binBoundsMs.map { $0 >= 1000 ? "\(Int($0 / 1000))s" : "\(Int($0))" }
        for (i, n) in bins.enumerated() {
            let x = 5 + Double(i) * step
            let h = Double(height - top - bottom) * Double(n) / Double(most)
            if n > 0 {
                s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#2f4f7f\" stroke=\"#000\" stroke-width=\"0.5\"/>", x + 1, Double(height - bottom) - h, step - 2, h)
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\">", x + step / 2, Double(height - bottom) - h - 3) + number(n) + "</text>"
            }
            if i < labels.count && i % 2 == 0 {
                s += String(format: "<text x=\"%.1f\" y=\"%d\" font-size=\"9\" text-anchor=\"middle\">", x + step, height - bottom + 12) + labels[i] + "</text>"
            }
        }
        s += "<text x=\"\(width / 2)\" y=\"\(height - 4)\" font-size=\"10\" text-anchor=\"middle\">milliseconds (bin upper bounds)</text></svg>"
        return s
    }

    /// Horizontal bars, one per model, with the value as text.
    static func bars(_ items: [(label: String, value: Double, text: String)], fill: String) -> String {
        guard !items.isEmpty else { return "" }
        let rowHeight = 20, labelWidth = 260, barWidth = 420
        let most = max(items.map(\.value).max() ?? 0, .leastNonzeroMagnitude)
        var s = "<svg width=\"\(labelWidth + barWidth + 200)\" height=\"\(rowHeight * items.count + 6)\" role=\"img\">"
        for (i, item) in items.enumerated() {
            let y = 3 + i * rowHeight
            let w = item.value.isFinite && item.value > 0 ? max(1, Double(barWidth) * item.value / most) : 0
            s += "<text x=\"\(labelWidth - 6)\" y=\"\(y + 14)\" font-size=\"12\" text-anchor=\"end\">\(item.label)</text>"
            s += String(format: "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"14\" ", labelWidth, y + 2, w) + "fill=\"\(fill)\"/>"
            s += String(format: "<text x=\"%.1f\" y=\"%d\" font-size=\"11\">", Double(labelWidth) + w + 5, y + 14) + item.text + "</text>"
        }
        return s + "</svg>\n"
    }
}
