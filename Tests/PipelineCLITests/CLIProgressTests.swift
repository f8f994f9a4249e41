import CommandPipeline
import Foundation
import Testing

@testable import pipeline

/// The progress line: on a terminal redrawn in place with a total, a bar and an ETA; elsewhere a
/// plain line every `--progress-interval` seconds.
@Suite struct CLIProgressTests {
    static func figures(done: Int = 450, total: Int? = 1000, failed: Int = 12, elapsed: Double = 10) -> pipeline.Progress.Figures {
        pipeline.Progress.Figures(
            done: done, total: total.map { ($0, false) }, failed: failed, kinds: [("timeout", 10), ("rate_limited", 2)], inFlight: 64, waiting: 3,
            tokens: 123_000, cost: 0.0123, limit: 5, elapsed: elapsed)
    }

    @Test(arguments: [200, 120, 80, 60, 40, 20])
    func theLineFitsTheWidthAndKeepsTheMostUsefulFields(width: Int) {
        let line = pipeline.Progress.terminalLine(Self.figures(), width: width)
        #expect(line.count <= max(20, width) - 1, "\(width): \(line)")
        #expect(line.contains("450/1,000 45%"), "the count and percentage always: \(line)")
        if width >= 80 {
            let bar = line.prefix { $0 != "]" }.dropFirst()
            #expect(line.hasPrefix("[") && bar.count >= 10, "a bar in front: \(line)")
            #expect(bar.count(where: { $0 == "#" }) == Int(Double(bar.count) * 0.45), "45% of it filled: \(line)")
            #expect(line.contains("ETA 12s"), "550 left at 45/s: \(line)")
            #expect(line.contains("12 failed"))
        }
        if width >= 200 {
            for field in ["45 cmd/s", "12.3k tok/s", "$0.0123 ($4.99 left)", "12 failed (timeout 10, rate_limited 2)", "3 waiting on retry", "64 in flight", "10s"] {
                #expect(line.contains(field), "\(field) in \(line)")
            }
        }
    }

    @Test func withoutATotalTheLineSaysWhatIsDoneAndNoPercentage() {
        let line = pipeline.Progress.terminalLine(Self.figures(total: nil), width: 200)
        #expect(line.hasPrefix("450 done"), "\(line)")
        #expect(!line.contains("%") && !line.contains("ETA") && !line.contains("["))
        let plain = pipeline.Progress.plainLine(Self.figures())
        #expect(plain.hasPrefix("pipeline: progress 450/1,000 45%, 45 cmd/s, ETA 12s,") && plain.hasSuffix("10s\n") && !plain.contains("\u{1b}"), "\(plain)")
    }

    @Test func theTotalIsEstimatedFromTheBytesOfARegularFileUntilTheInputEnds() {
        let stats = Stats()
        var progress = pipeline.Progress(stats: stats)
        #expect(progress.total() == nil, "nothing known")
        progress.inputBytes = 10_000
        stats.bytesRead.store(2_500, ordering: .relaxed)
        stats.commandsRead.store(100, ordering: .relaxed)
        #expect(progress.total()! == (400, true), "100 commands in a quarter of the bytes")
        progress.expected = 350
        #expect(progress.total()! == (350, false), "--expect")
        stats.commandsRead.store(380, ordering: .relaxed)
        #expect(progress.total()! == (380, false), "never below what was read")
        stats.inputEnded.store(true, ordering: .relaxed)
        stats.commandsRead.store(390, ordering: .relaxed)
        #expect(progress.total()! == (390, false), "exact at the end of input")
    }

    static func script(_ command: String, environment: [String: String] = [:]) async throws -> String {
        // `script` runs the command under a pseudo-terminal: stderr is a terminal.
        let shell = environment.map { "\($0.key)=\($0.value) " }.joined() + command
        let run = try await onOwnThread { try runProcess(URL(fileURLWithPath: "/usr/bin/script"), ["-q", "-e", "-c", shell, "/dev/null"], timeout: 120) }
        #expect(run.status == 0 || run.status == 1, "\(run.output.suffix(2000))")
        return run.output
    }

    /// The brief's test: a run over a regular file, under a pseudo-terminal.
    @Test func underATerminalARunOverAFileShowsPercentageAndETAUpTo100() async throws {
        let dir = try CLI.temporaryDirectory()
        let input = dir.appendingPathComponent("in.jsonl"), output = dir.appendingPathComponent("out.jsonl")
        // 400 commands of 20 ms at 8 at once: at least a second, so several frames.
        try (0..<400).map { #"{"id":"c\#($0)","model":"gpt-4o-mini","prompt":"question \#($0)"}"# }.joined(separator: "\n").write(to: input, atomically: true, encoding: .utf8)
        let text = try await Self.script(
            "'\(CLI.binary.path)' --mock-latency-ms 20 --concurrency 8 --mock-faults retryable=0.1,fatal=0.1,seed=3 --max-attempts 2 < '\(input.path)' > '\(output.path)'",
            environment: ["COLUMNS": "200"])
        let frames = text.components(separatedBy: "\r\u{1B}[K").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        let percentages = frames.compactMap { frame -> Int? in
            guard let range = frame.range(of: #"/[~]?[0-9,]+ [0-9]+%"#, options: .regularExpression) else { return nil }
            return Int(frame[range].split(separator: " ").last!.dropLast())
        }
        #expect(!percentages.isEmpty, "\(text.prefix(2000))")
        #expect(percentages.last == 100, "\(percentages)")
        #expect(zip(percentages, percentages.dropFirst()).allSatisfy { $0 <= $1 }, "never goes back: \(percentages)")
        #expect(frames.contains { $0.contains("ETA ") && $0.hasPrefix("[") && $0.count <= 199 }, "\(frames)")
        let last = try #require(frames.last { $0.contains("400/400 100%") }, "\(frames)")
        // The failures by kind, as the run loop counted them: the same count as the results'.
        let failed = try String(contentsOf: output, encoding: .utf8).split(separator: "\n").count { $0.contains(#""status":"failed""#) }
        #expect(failed > 0 && last.contains("  \(failed) failed (provider_error \(failed))  "), "\(last)")
        // Erased before the summary: the summary starts right after an erase.
        #expect(text.contains("\r\u{1B}[Kpipeline: "), "\(text.suffix(600))")
        #expect(try String(contentsOf: output, encoding: .utf8).split(separator: "\n").count == 400)
    }

    @Test func withExpectAPipedRunHasATotalAndQuietHasNoLine() async throws {
        let dir = try CLI.temporaryDirectory()
        let input = dir.appendingPathComponent("in.jsonl")
        try (0..<50).map { #"{"id":"c\#($0)","model":"m","prompt":"q"}"# }.joined(separator: "\n").write(to: input, atomically: true, encoding: .utf8)
        let piped = try await Self.script("cat '\(input.path)' | '\(CLI.binary.path)' --expect 50 --mock-latency-ms 5 --concurrency 4 > /dev/null")
        #expect(piped.contains("50/50 100%"), "\(piped)")
        let quiet = try await Self.script("cat '\(input.path)' | '\(CLI.binary.path)' --expect 50 --quiet > /dev/null")
        #expect(!quiet.contains("%") && !quiet.contains("pipeline:"), "\(quiet)")
    }

    @Test func withoutATerminalAPlainLineEveryInterval() async throws {
        let input = (0..<200).map { #"{"id":"c\#($0)","model":"m","prompt":"q"}"# }.joined(separator: "\n")
        // 200 commands of 20 ms at 4 at once: at least a second, so at least one line at 0.05 s.
        let run = try await CLI.run(["--mock-latency-ms", "20", "--concurrency", "4", "--progress-interval", "0.05", "--expect", "200"], stdin: input)
        #expect(run.status == 0)
        let lines = run.stderr.split(separator: "\n").filter { $0.hasPrefix("pipeline: progress ") }
        #expect(!lines.isEmpty, "\(run.stderr)")
        #expect(lines.allSatisfy { $0.contains("/200 ") && $0.contains("ETA ") }, "\(lines)")
        #expect(!run.stderr.contains("\u{1b}") && !run.stderr.contains("\r"), "no terminal codes in a log")
        for arguments in [["--progress-interval", "0"], ["--quiet", "--progress-interval", "0.05"], []] {
            let none = try await CLI.run(["--mock-latency-ms", "20", "--concurrency", "4"] + arguments, stdin: input)
            #expect(!none.stderr.contains("pipeline: progress"), "\(arguments): \(none.stderr)")
        }
    }

    /// Issue 26: commands held by the rate limiter show on the line while they wait (the wait is
    /// known before it ends). One request a minute: the first command runs, the other two wait
    /// until their one-second `--timeout` ends them.
    @Test func commandsWaitingOnTheRateLimitShowOnTheLine() async throws {
        let input = (0..<3).map { #"{"id":"c\#($0)","model":"m","prompt":"q"}"# }.joined(separator: "\n")
        let run = try await CLI.run(["--rate-limit-rpm", "1", "--timeout", "1", "--progress-interval", "0.05", "--concurrency", "4"], stdin: input)
        #expect(run.status == 1, "\(run.stderr)")
        let lines = run.stderr.split(separator: "\n").filter { $0.hasPrefix("pipeline: progress ") }
        #expect(lines.contains { $0.contains("2 waiting on rate limit") }, "\(lines)")
        #expect(pipeline.Progress.fields(Self.figures(), detail: false).allSatisfy { !$0.text.contains("rate limit") }, "nobody waiting: no field")
        var figures = Self.figures()
        figures.rateLimited = 1_234
        #expect(pipeline.Progress.terminalLine(figures, width: 200).contains("1,234 waiting on rate limit"))
    }

    /// Issue 25: commands waiting for a deployment of a router (`--deployments`, every one
    /// cooling) are counted by the lender and show on the line while they wait.
    @Test func commandsWaitingOnADeploymentShowOnTheLine() {
        let stats = Stats()
        let lender = CountingLender(ticket: SlotTicket(admission: Admission(slots: 1) {}), stats: stats)
        lender.deploymentWaitStarted()
        lender.deploymentWaitStarted()
        #expect(stats.waitingOnDeployment.load(ordering: .relaxed) == 2)
        lender.deploymentWaitEnded()
        #expect(stats.waitingOnDeployment.load(ordering: .relaxed) == 1)
        #expect(pipeline.Progress.fields(Self.figures(), detail: false).allSatisfy { !$0.text.contains("deployment") }, "nobody waiting: no field")
        var figures = Self.figures()
        figures.deploymentWaits = 1_234
        #expect(pipeline.Progress.terminalLine(figures, width: 200).contains("1,234 waiting on a deployment"))
    }

    /// The backoff lender counts the commands waiting on a retry, and gives the slot as the ticket does.
    @Test func theLenderCountsCommandsWaitingOnARetry() async {
        let stats = Stats()
        let admission = Admission(slots: 1) {}
        let pieces = (0..<3).map { JSONStreamSplitter.Piece(bytes: Array("{}".utf8), offset: 0, line: $0 + 1) }
        admission.append(pieces.enumerated().map { Admission.Item(piece: $1, index: $0, skip: false) })
        #expect(admission.start()?.index == 0)
        let ticket = SlotTicket(admission: admission)
        ticket.allowLending(for: PlannedCommand(id: "c", plan: ExecutionPlan(calls: [APICall(model: "m", parts: [.text("x")])])))
        let lender = CountingLender(ticket: ticket, stats: stats)
        lender.backoffStarted()
        #expect(stats.waitingOnRetry.load(ordering: .relaxed) == 1)
        #expect(admission.start()?.index == 1, "the slot was lent")
        #expect(SlotTicket(admission: admission).finish(goOn: false) == nil, "command 1 ends")
        await lender.backoffEnded()
        #expect(stats.waitingOnRetry.load(ordering: .relaxed) == 0)
        #expect(admission.start() == nil, "and taken back")
    }

    /// `batch status --wait` off a terminal: the jobs' line (done, %, pending, jobs, time since
    /// submit) at its first poll, then at most every 30 s.
    @Test func batchWaitShowsTheJobsLine() async throws {
        let dir = try CLI.temporaryDirectory()
        let job = dir.appendingPathComponent("job.json")
        let input = (0..<3).map { #"{"id":"b\#($0)","model":"m","prompt":"q\#($0)"}"# }.joined(separator: "\n")
        let submit = try await CLI.run(["batch", "submit", "--job", job.path, "--mock-batch-delay-ms", "600000", "--quiet"], stdin: input)
        #expect(submit.status == 0, "\(submit.stderr)")
        let waited = try await CLI.run(["batch", "status", job.path, "--wait", "--poll-seconds", "0.05", "--timeout", "0.3"])
        #expect(waited.status == 4)
        let lines = waited.stderr.split(separator: "\n").filter { $0.hasPrefix("batch: ") }
        #expect(lines.count == 1, "once at the first poll, not at every poll: \(waited.stderr)")
        #expect(lines.first?.hasPrefix("batch: 0/3 requests done (0 failed), 0%, 3 pending, 0/1 jobs ended, since submit ") == true, "\(waited.stderr)")
        let quiet = try await CLI.run(["batch", "status", job.path, "--wait", "--poll-seconds", "0.05", "--timeout", "0.1", "--quiet"])
        #expect(!quiet.stderr.contains("batch: "), "\(quiet.stderr)")
    }

    @Test(arguments: [
        (["--expect", "0"], "option '--expect' needs a whole number from 1 to 1000000000000, got '0'"),
        (["--expect", "1e3"], "option '--expect' needs a whole number"),
        (["--progress-interval", "-1"], "option '--progress-interval' needs a number of seconds from 0 (off) to 86400 (one day), got '-1'"),
        (["--progress-interval", "nan"], "option '--progress-interval' needs a number of seconds"),
        (["--progress-interval", "86401"], "got '86401'"),
    ])
    func theNewFlagsAreRangeChecked(arguments: [String], message: String) async throws {
        let run = try await CLI.run(arguments, stdin: "")
        #expect(run.status == 2)
        #expect(run.stderr.contains(message), "\(run.stderr)")
    }
}
