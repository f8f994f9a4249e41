import CommandPipeline
import Foundation

/// A live progress line on a terminal's stderr, and the closing summary.
struct Progress {
    let stats: Stats
    let start = ContinuousClock.now
    /// The run's spending, for the summary's cost and budget (nil in validate mode).
    var ledger: CostLedger?
    /// The mock provider charges nothing: its cost is what the catalog's prices would make it.
    var mockProvider = false

    /// Commands the input holds, from `--expect`.
    var expected: Int?
    /// Stdin's size when it is a regular file: the total is estimated from the bytes read.
    var inputBytes: Int?

    var elapsed: Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Stdin's size, when it is a regular file read from its start.
    static func regularInputSize(fd: Int32 = 0) -> Int? {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size > 0 else { return nil }
        let offset = lseek(fd, 0, SEEK_CUR)
        return Int(info.st_size) - max(0, Int(offset))
    }

    /// The run's total and whether it is an estimate: exact once stdin has ended; else
    /// `--expect`; else, for a regular file, the commands read so far scaled by the share of its
    /// bytes they took; else unknown.
    func total() -> (count: Int, estimated: Bool)? {
        let read = stats.commandsRead.load(ordering: .relaxed)
        if stats.inputEnded.load(ordering: .relaxed) { return (read, false) }
        if let expected { return (max(expected, read), false) }
        let bytes = stats.bytesRead.load(ordering: .relaxed)
        guard let size = inputBytes, bytes > 0, read > 0 else { return nil }
        let estimate = Double(read) * Double(size) / Double(bytes)
        return (max(read, Int(min(estimate, 1e15))), true)
    }

    /// The figures of one progress line, taken at once.
    struct Figures {
        var done: Int
        var total: (count: Int, estimated: Bool)?
        var failed: Int
        var kinds: [(kind: String, count: Int)]
        var inFlight: Int
        var waiting: Int
        /// Commands held by a rate limiter.
        var rateLimited: Int = 0
        /// Commands waiting for a deployment of a router.
        var deploymentWaits: Int = 0
        var tokens: Int
        var cost: Double?
        var limit: Double?
        var elapsed: Double
    }

    func figures() -> Figures {
        let kinds = stats.failureKinds.withLock { $0 }.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { (kind: $0.key, count: $0.value) }
        var cost: Double?
        if let ledger, ledger.pricedCommands > 0 || ledger.limit != nil { cost = ledger.spent }
        return Figures(
            done: stats.done, total: total(), failed: stats.failed.load(ordering: .relaxed), kinds: kinds,
            inFlight: max(0, stats.inFlight.load(ordering: .relaxed)), waiting: max(0, stats.waitingOnRetry.load(ordering: .relaxed)),
            rateLimited: max(0, stats.waitingOnRateLimit.load(ordering: .relaxed)),
            deploymentWaits: max(0, stats.waitingOnDeployment.load(ordering: .relaxed)), tokens: stats.tokens.load(ordering: .relaxed), cost: cost, limit: ledger?.limit, elapsed: elapsed)
    }

    static func grouped(_ n: Int) -> String { ReportPage.number(n) }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(min(seconds, 3.6e8).rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, s % 3600 / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }

    static func compact(_ value: Double) -> String {
        switch value {
        case 1e9...: String(format: "%.1fG", value / 1e9)
        case 1e6...: String(format: "%.1fM", value / 1e6)
        case 1e4...: String(format: "%.1fk", value / 1e3)
        default: String(format: "%.0f", value)
        }
    }

    /// One field of the line; the lowest `keep` goes first when the line is too wide.
    struct Field {
        var text: String
        var keep: Int
    }

    /// The fields in display order: count and percentage, rate, ETA, tokens/s, cost, failures,
    /// waits, in flight, elapsed. `detail`: failures by kind too.
    static func fields(_ f: Figures, detail: Bool) -> [Field] {
        var fields: [Field] = []
        let rate = f.elapsed > 0 ? Double(f.done) / f.elapsed : 0
        if let total = f.total, total.count > 0 {
            let share = min(1, Double(f.done) / Double(total.count))
            fields.append(Field(text: "\(grouped(f.done))/\(total.estimated ? "~" : "")\(grouped(total.count)) \(Int((share * 100).rounded(.down)))%", keep: 100))
            fields.append(Field(text: "\(compact(rate)) cmd/s", keep: 60))
            let remaining = max(0, total.count - f.done)
            fields.append(Field(text: "ETA " + (remaining == 0 ? "0s" : rate > 0 ? duration(Double(remaining) / rate) : "?"), keep: 90))
        } else {
            fields.append(Field(text: "\(grouped(f.done)) done", keep: 100))
            fields.append(Field(text: "\(compact(rate)) cmd/s", keep: 60))
        }
        fields.append(Field(text: "\(compact(f.elapsed > 0 ? Double(f.tokens) / f.elapsed : 0)) tok/s", keep: 20))
        if let cost = f.cost {
            var text = String(format: "$%.4f", cost)
            if let limit = f.limit { text += String(format: " ($%.2f left)", max(0, limit - cost)) }
            fields.append(Field(text: text, keep: 50))
        }
        if f.failed > 0 {
            var text = "\(grouped(f.failed)) failed"
            if detail, !f.kinds.isEmpty {
                text += " (" + f.kinds.prefix(3).map { "\(StandardError.oneLine($0.kind)) \(grouped($0.count))" }.joined(separator: ", ") + (f.kinds.count > 3 ? ", …" : "") + ")"
            }
            fields.append(Field(text: text, keep: 80))
        }
        if f.waiting > 0 { fields.append(Field(text: "\(grouped(f.waiting)) waiting on retry", keep: 40)) }
        if f.rateLimited > 0 { fields.append(Field(text: "\(grouped(f.rateLimited)) waiting on rate limit", keep: 41)) }
        if f.deploymentWaits > 0 { fields.append(Field(text: "\(grouped(f.deploymentWaits)) waiting on a deployment", keep: 42)) }
        fields.append(Field(text: "\(grouped(f.inFlight)) in flight", keep: 30))
        fields.append(Field(text: duration(f.elapsed), keep: 10))
        return fields
    }

    /// The terminal line: fields dropped (lowest `keep` first, failures by kind before anything)
    /// until it fits `width` columns, a bar of the share done in what is left.
    static func terminalLine(_ f: Figures, width: Int) -> String {
        let room = max(20, width) - 1
        // With a known total, a bar of at least 10 cells keeps its place on a line of 50 or more.
        let barRoom = f.total.map { $0.count > 0 } == true && room >= 50 ? 13 : 0
        let fieldRoom = room - barRoom
        var fields = fields(f, detail: true)
        func length(_ fields: [Field]) -> Int { fields.reduce(0) { $0 + $1.text.count } + 2 * max(0, fields.count - 1) }
        if length(fields) > fieldRoom { fields = Self.fields(f, detail: false) }
        while length(fields) > fieldRoom, fields.count > 1, let lowest = fields.indices.min(by: { fields[$0].keep < fields[$1].keep }) {
            fields.remove(at: lowest)
        }
        var line = fields.map(\.text).joined(separator: "  ")
        if line.count > fieldRoom { line = String(line.prefix(fieldRoom)) }
        // The bar, in front, when the total is known and it has room for at least 10 cells.
        if let total = f.total, total.count > 0 {
            let cells = min(30, room - line.count - 3)
            if cells >= 10 {
                let filled = Int((Double(cells) * min(1, Double(f.done) / Double(total.count))).rounded(.down))
                line = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: cells - filled) + "] " + line
            }
        }
        return line
    }

    /// The line written every `--progress-interval` seconds when stderr is not a terminal.
    static func plainLine(_ f: Figures) -> String {
        "pipeline: progress " + fields(f, detail: true).map(\.text).joined(separator: ", ") + "\n"
    }

    /// The terminal's width: `TIOCGWINSZ` on stderr (`fd`), else `COLUMNS`, else 80.
    static func terminalWidth(fd: Int32 = 2) -> Int {
        var size = winsize()
        if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap({ Int($0) }), (1...10_000).contains(columns) { return columns }
        return 80
    }

    /// On a terminal: the line redrawn in place every quarter second until cancelled, then drawn
    /// once more (the final figures) and erased. Otherwise a plain line every `interval` seconds
    /// (none when 0).
    func live(terminal: Bool, interval: Double) -> Task<Void, Never>? {
        live(terminal: terminal, interval: interval, clock: SystemClock(), width: { Self.terminalWidth() }, write: { StandardError.writeRaw($0) })
    }

    /// How often the terminal line is redrawn.
    static let redrawInterval = Duration.milliseconds(250)

    /// `live`, on `clock`, writing with `write`. This task is the only difference between a run
    /// with stderr a terminal and one without (the run loop's per-command bookkeeping in `Stats`
    /// is the same in both): it renders only when `clock` wakes it, at most once per interval
    /// however many commands finished in between, and nothing happens per command
    /// (ADR 0011, "What the line costs"). `write` gets the plain lines already escaped.
    func live(
        terminal: Bool, interval: Double, clock: some PipelineClock, width: @escaping @Sendable () -> Int, write: @escaping @Sendable (String) -> Void
    ) -> Task<Void, Never>? {
        if terminal {
            return Task {
                // The first frame after a quarter second: the run's opening notes come first.
                while !Task.isCancelled {
                    do { try await clock.sleep(for: Self.redrawInterval) } catch { break }
                    if Task.isCancelled { break }
                    write("\r\u{1B}[K" + Self.terminalLine(figures(), width: width()))
                }
                write("\r\u{1B}[K" + Self.terminalLine(figures(), width: width()))
                write("\r\u{1B}[K")
            }
        }
        guard interval > 0 else { return nil }
        let period = Duration.milliseconds(max(10, Int(min(interval, 1e9) * 1000)))
        return Task {
            while true {
                do { try await clock.sleep(for: period) } catch { return }
                write(StandardError.escapingControls(Self.plainLine(figures())))
            }
        }
    }

    func summary() -> String {
        var parts = ["\(stats.succeeded.load(ordering: .relaxed)) succeeded", "\(stats.failed.load(ordering: .relaxed)) failed"]
        let skipped = stats.skipped.load(ordering: .relaxed)
        if skipped > 0 { parts.append("\(skipped) skipped (already succeeded)") }
        parts.append("\(stats.fallbacks.load(ordering: .relaxed)) fallbacks used")
        parts.append("\(stats.tokens.load(ordering: .relaxed)) tokens")
        let rate = elapsed > 0 ? Double(stats.done) / elapsed : 0
        return "pipeline: " + parts.joined(separator: ", ") + String(format: " in %.2fs (%.0f commands/s)\n", elapsed, rate) + costSummary()
    }

    /// "cost: $0.001234 at catalog prices (…)", and the budget's stop when it stopped the run.
    func costSummary() -> String {
        guard let ledger else { return "" }
        let priced = ledger.pricedCommands, unpriced = ledger.unpricedCommands
        // Nothing priced and no budget: the notes on unknown models have said it all.
        if priced == 0 && ledger.limit == nil { return "" }
        var text = String(format: "pipeline: cost $%.6f at catalog prices", ledger.spent)
        var notes: [String] = ["\(priced) command\(priced == 1 ? "" : "s") priced"]
        if unpriced > 0 { notes.append("\(unpriced) unpriced (model not in the catalog)") }
        let unreported = ledger.unreportedCalls
        if unreported > 0 {
            text = String(format: "pipeline: cost at least $%.6f at catalog prices", ledger.spent)
            notes.append("\(unreported) call\(unreported == 1 ? "" : "s") without reported usage: not in the sum")
        }
        if mockProvider { notes.append("mock provider: nothing was charged") }
        text += " (" + notes.joined(separator: ", ") + ")\n"
        if let limit = ledger.limit {
            let refused = ledger.refused
            if refused > 0 {
                text += String(format: "pipeline: budget $%.2f (--max-cost) reached: ", limit)
                    + "\(refused) command\(refused == 1 ? "" : "s") not started (budget_exceeded)\n"
            } else {
                text += String(format: "pipeline: budget $%.2f (--max-cost): not reached\n", limit)
            }
        }
        return text
    }
}
