import Foundation
import Testing

/// `pipeline report`: results files in, one self-contained HTML page out.
@Suite struct CLIReportTests {
    /// A run over four models with seeded faults: retries, fatal failures and latency.
    static func fourModelRun(in dir: URL) async throws -> (path: String, records: [[String: Any]]) {
        let models = ["gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash", "mock-large"]
        let input = (0..<200).map { #"{"id":"c\#($0)","model":"\#(models[$0 % 4])","prompt":"question number \#($0) about the report"}"# }.joined(separator: "\n")
        let run = try await CLI.run(
            ["--mock-faults", "retryable=0.3,fatal=0.08,retry_after_ms=1,seed=11", "--mock-latency-ms", "2", "--max-attempts", "2", "--quiet"], stdin: input)
        #expect(run.status == 1, "some commands fail: \(run.stderr)")
        let path = dir.appendingPathComponent("results.jsonl").path
        try run.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, run.records)
    }

    /// The text of the page without its tags.
    static func text(_ html: String) -> String {
        html.replacingOccurrences(of: "<[^>]*>", with: " ", options: .regularExpression)
    }

    @Test func thePageHoldsTheTotalsOfTheResultsAndFetchesNothing() async throws {
        let dir = try CLI.temporaryDirectory()
        let (path, records) = try await Self.fourModelRun(in: dir)
        let stats = dir.appendingPathComponent("stats.json").path
        let report = try await CLI.run(["report", path, "--title", "Four models", "--stats-json", stats])
        #expect(report.status == 0, "\(report.stderr)")
        let html = report.stdout
        let succeeded = records.filter { $0["status"] as? String == "succeeded" }.count
        let failed = records.count - succeeded
        let retries = records.reduce(0) { $0 + ($1[path: "telemetry.retries"] as? Int ?? 0) }
        let output = records.reduce(0) { $0 + ($1[path: "usage.completion_tokens"] as? Int ?? 0) }
        let cost = records.reduce(0.0) { $0 + ($1[path: "telemetry.cost.usd"] as? Double ?? 0) }
        #expect(failed > 0 && retries > 0)
        let totals = Self.text(html.components(separatedBy: "id=\"totals\"")[1].components(separatedBy: "</div>\n")[0])
        for (value, label) in [("200", "commands"), ("\(succeeded)", "succeeded"), ("\(failed)", "failed"), ("\(retries)", "retries"),
                               (ReportNumber.grouped(output), "output tokens"), (String(format: "$%.6f", cost), "cost at catalog prices")] {
            #expect(totals.contains("\(value)  \(label)"), "\(label) = \(value) in \(totals)")
        }
        for model in ["gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash", "mock-large"] {
            #expect(html.contains("<td class=\"t\">\(model)</td>"), "a row for \(model)")
        }
        // Commands that failed before any answer: no "(no answer)" model row, one line by kind.
        let unanswered = records.filter { $0["status"] as? String == "failed" && ($0["responses"] as? [Any] ?? []).isEmpty && ($0[path: "telemetry.cost.requests"] as? [Any] ?? []).isEmpty }.count
        #expect(!html.contains("(no answer)") && !html.contains("(no model named)"))
        if unanswered > 0 {
            #expect(html.contains("id=\"unanswered\"><b>\(unanswered) command\(unanswered == 1 ? "" : "s") failed before any model answered</b>"), "\(unanswered)")
        }
        #expect(html.contains("<svg"), "inline SVG charts")
        // Self-contained: nothing that could fetch anything.
        for needle in ["<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import", "http://", "https://"] {
            #expect(!html.lowercased().contains(needle), "\(needle)")
        }
        #expect(report.stderr.contains("pipeline: report: 200 results (\(succeeded) succeeded, \(failed) failed)"), "\(report.stderr)")
        // --stats-json: the page's rows, in the run's stats schema.
        let (valid, problems) = try await CLI.validate(try String(contentsOfFile: stats, encoding: .utf8), against: "stats.schema.json")
        #expect(valid, "\(problems)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [String: Any])
        let rows = try #require(object["models"] as? [[String: Any]])
        #expect(rows.reduce(0) { $0 + ($1["failed"] as? Int ?? 0) } == failed - unanswered, "the rows are the table's")
        #expect(abs((object[path: "cost.usd"] as? Double ?? -1) - cost) < 1e-6)
    }

    @Test func namesAndMessagesFromInputAreEscaped() async throws {
        let dir = try CLI.temporaryDirectory()
        // Model names and an error message carrying markup, quotes and control characters.
        let evil = #"<script>alert(\"x\")</script>' \u001b[2J\n<b>"#
        let input = [
            #"{"id":"a","model":"\#(evil)","prompt":"hi"}"#,
            #"{"id":"b","model":"m","prompt":"hi","<img src=x onerror=alert(1)>":1}"#,
        ].joined(separator: "\n")
        let run = try await CLI.run(["--quiet"], stdin: input)
        let path = dir.appendingPathComponent("evil \"<results>\".jsonl").path
        try (run.stdout + "{\"status\":\"<script>bad</script>\"}\n").write(toFile: path, atomically: true, encoding: .utf8)
        let report = try await CLI.run(["report", path, "--title", "<script>t</script>"])
        #expect(report.status == 1, "one line is not a result: \(report.stderr)")
        let html = report.stdout
        #expect(!html.lowercased().contains("<script"), "no markup from input survives")
        #expect(!html.contains("<img") && !html.contains("\n<b>"))
        #expect(!html.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "no control character reaches the page raw")
        #expect(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; \\u{1b}[2J\\u{a}&lt;b&gt;"), "the model name, escaped")
        #expect(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "the message, escaped")
        #expect(html.contains("<title>&lt;script&gt;t&lt;/script&gt;</title>"))
        #expect(html.contains("evil &quot;&lt;results&gt;&quot;.jsonl:3"), "the bad line named, its file name escaped")
        #expect(report.stderr.contains(":3: skipped: not a result record"), "\(report.stderr)")
        #expect(!report.stderr.unicodeScalars.contains("\u{1b}"))
    }

    @Test func aTruncatedFileAndStrayLinesAreCountedNamedAndExit1() async throws {
        let dir = try CLI.temporaryDirectory()
        let run = try await CLI.run(["--quiet"], stdin: #"{"id":"a","model":"m","prompt":"hi"}"# + "\n" + #"{"id":"b","model":"m","prompt":"hi"}"#)
        let whole = run.stdout
        let torn = String(whole.dropLast(40))   // the second record cut mid-way, no newline
        let first = dir.appendingPathComponent("first.jsonl").path, second = dir.appendingPathComponent("second.jsonl").path
        try whole.write(toFile: first, atomically: true, encoding: .utf8)
        try ("garbage\n\n" + torn).write(toFile: second, atomically: true, encoding: .utf8)
        let report = try await CLI.run(["report", first, second])
        #expect(report.status == 1)
        #expect(report.stderr.contains("second.jsonl:1: skipped: not JSON"), "\(report.stderr)")
        #expect(report.stderr.contains("second.jsonl:4: skipped: not JSON"), "the torn last line, after a blank one: \(report.stderr)")
        #expect(report.stderr.contains("3 results (3 succeeded, 0 failed)") && report.stderr.contains("2 lines skipped"), "\(report.stderr)")
        #expect(report.stdout.contains("2 lines skipped"))

        let clean = try await CLI.run(["report", first])
        #expect(clean.status == 0 && !clean.stdout.contains("skipped"))
    }

    @Test(arguments: [
        (["report"], "needs at least one results file"),
        (["report", "/nonexistent/r.jsonl"], "cannot read '/nonexistent/r.jsonl'"),
        (["report", "r.jsonl", "--titel", "x"], "unknown option '--titel' for 'report'"),
        (["report", "r.jsonl", "--title"], "option '--title' needs a value"),
        (["report", "r.jsonl", "--title", String(repeating: "x", count: 201)], "at most 200 characters"),
    ])
    func badInvocationsAreClearErrors(arguments: [String], message: String) async throws {
        let run = try await CLI.run(arguments)
        #expect(run.status == 2, "\(run.stderr)")
        #expect(run.stderr.contains(message), "\(run.stderr)")
        #expect(run.stdout.isEmpty)
    }

    /// The page in a real browser: headless Chromium (Debian's `chromium`, installed by
    /// `.ci/run`) draws it and reads its text back.
    @Test func chromiumDrawsThePageAndReadsTheTotals() async throws {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let chromium else {
            Issue.record("chromium is not installed: apt-get install -y chromium (.ci/run does it)")
            return
        }
        let dir = try CLI.temporaryDirectory()
        let (path, records) = try await Self.fourModelRun(in: dir)
        let report = try await CLI.run(["report", path, "--title", "Four models"])
        #expect(report.status == 0, "\(report.stderr)")
        let page = dir.appendingPathComponent("report.html"), png = dir.appendingPathComponent("report.png")
        try report.stdout.write(to: page, atomically: true, encoding: .utf8)
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--user-data-dir=\(dir.appendingPathComponent("profile").path)"]
        let shot = try await onOwnThread {
            try runProcess(URL(fileURLWithPath: chromium), flags + ["--window-size=1200,1600", "--screenshot=\(png.path)", page.absoluteString], timeout: 120)
        }
        #expect(shot.status == 0, "\(shot.output.suffix(2000))")
        // Not blank: many colours, and the dark ones (text, bars) a real share of the picture
        // (read with Pillow from .venv, which the peers' setup installs).
        if let problem = TestPaths.pythonPeersProblem {
            Issue.record("\(problem)")
            return
        }
        let check = try await onOwnThread {
            try runProcess(TestPaths.python, ["-c", """
                import sys
                from PIL import Image
                im = Image.open(sys.argv[1]).convert('L')
                pixels = list(im.getdata())
                print(im.size[0], im.size[1], len(set(pixels)), sum(1 for p in pixels if p < 128))
                """, png.path], timeout: 60)
        }
        let figures = (check.output.split(separator: "\n").last ?? "").split(separator: " ").compactMap { Int($0) }
        try #require(figures.count == 4, "\(check.output)")
        #expect(figures[0] == 1200 && figures[1] == 1600)
        #expect(figures[2] > 20, "more than a few shades: \(figures)")
        #expect(figures[3] > figures[0] * figures[1] / 100, "at least 1% dark pixels (text and bars): \(figures)")

        let dom = try await onOwnThread {
            try runProcess(URL(fileURLWithPath: chromium), flags + ["--dump-dom", page.absoluteString], timeout: 120)
        }
        #expect(dom.status == 0)
        let succeeded = records.filter { $0["status"] as? String == "succeeded" }.count
        let text = Self.text(dom.output)
        #expect(text.contains("200  commands"), "\(text.prefix(3000))")
        #expect(text.contains("\(succeeded)  succeeded") && text.contains("\(200 - succeeded)  failed"))
    }

    /// The page's size does not grow with the input's variety: 100,000 results with distinct
    /// error kinds and a 1 MB model name make a page well under 1 MB (kinds beyond the cap count
    /// as "other" in the row too; names are cut).
    @Test func distinctKindsAndAHugeModelNameKeepThePageSmall() async throws {
        let dir = try CLI.temporaryDirectory()
        let path = dir.appendingPathComponent("many.jsonl").path
        var text = (0..<100_000).map { #"{"status":"failed","error":{"kind":"kind-\#($0)","message":"m"},"telemetry":{"provider":"p"}}"# }.joined(separator: "\n")
        let huge = String(repeating: "M", count: 1 << 20)
        text += "\n" + #"{"status":"succeeded","responses":[{"model":"\#(huge)"}],"telemetry":{"provider":"p","durations_ms":{"total":3}}}"# + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let report = try await CLI.run(["report", path])
        #expect(report.status == 0, "\(report.stderr.prefix(500))")
        let page = report.stdout.utf8.count
        #expect(page > 1000 && page < 200_000, "page of \(page) bytes")
        #expect(report.stdout.contains("other \(ReportNumber.grouped(100_000 - 32))"), "the row counts the rest as other")
        #expect(report.stdout.contains("<td class=\"t\">" + String(repeating: "M", count: 200) + "</td>"), "the model name, cut")
    }
}

/// Numbers grouped by thousands, as the page writes them.
enum ReportNumber {
    static func grouped(_ n: Int) -> String {
        let digits = String(n)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return out
    }
}
