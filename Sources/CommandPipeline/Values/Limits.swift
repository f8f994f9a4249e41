/// The ranges every integer of a command must fall in. They are far beyond any real
/// model or provider, and small enough that sums and products of them cannot overflow.
/// `PlannedCommand.validationIssues()` checks them, so commands built in Swift and
/// commands read from the wire meet the same rules.
package enum Limits {
    /// `config.max_tokens`: completion tokens one call may ask for.
    public static let maxTokens: ClosedRange<Int> = 1...100_000_000
    /// `--max-repairs`, `config.max_repairs`: re-asks of an answer that breaks its response_format.
    public static let maxRepairs: ClosedRange<Int> = 0...10
    /// Token counts in estimates (`min_tokens`, `expected_tokens`, `max_tokens`).
    public static let tokenCount: ClosedRange<Int> = 0...1_000_000_000_000
    /// `rate_constraint.requests_per_minute`.
    public static let requestsPerMinute: ClosedRange<Int> = 1...1_000_000_000
    /// `rate_constraint.tokens_per_minute`.
    public static let tokensPerMinute: ClosedRange<Int> = 1...1_000_000_000_000
    /// `cache.ttl_seconds`: one second to one year.
    public static let cacheTTLSeconds: ClosedRange<Int> = 1...31_536_000
    /// Token counts reported by a provider; a larger or negative figure is pinned to this range.
    public static let reportedTokens: ClosedRange<Int> = 0...(1 << 53)
}

extension ClosedRange where Bound == Int {
    /// "between 1 and 100,000,000", for messages.
    var spelled: String { "between \(lowerBound.grouped) and \(upperBound.grouped)" }

    /// `value` moved into the range.
    package func clamp(_ value: Int) -> Int { Swift.min(Swift.max(value, lowerBound), upperBound) }
}

extension Int {
    /// 1000000 → "1,000,000".
    var grouped: String {
        let digits = String(magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (self < 0 ? "-" : "") + out
    }
}
