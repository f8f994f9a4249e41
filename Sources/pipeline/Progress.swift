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

    var elapsed: Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    func line() -> String {
        let done = stats.done
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        return String(format: "pipeline: %d done, %d failed, %d in flight, %.0f commands/s, %.1fs",
                      done, stats.failed.load(ordering: .relaxed), stats.inFlight.load(ordering: .relaxed), rate, elapsed)
    }

    /// Redraws the line every quarter second until cancelled.
    func live() -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                StandardError.writeRaw("\r\u{1B}[K" + line())
                try? await Task.sleep(for: .milliseconds(250))
            }
            StandardError.writeRaw("\r\u{1B}[K")
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
