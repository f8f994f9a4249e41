/// Arithmetic that pins at the bounds instead of trapping. Counts that come from input or
/// from servers (tokens, limits, durations) are added with these, so an absurd number
/// degrades a figure instead of crashing the run.
extension Int {
    /// `self + other`, pinned at `Int.max` / `Int.min`.
    @inlinable
    package func addingSaturating(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }

    /// `self * other`, pinned at `Int.max` / `Int.min`.
    @inlinable
    package func multipliedSaturating(by other: Int) -> Int {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? ((self < 0) == (other < 0) ? .max : .min) : product
    }
}

extension Sequence {
    /// The sum of `value` over the elements, pinned at `Int.max` / `Int.min`.
    @inlinable
    package func saturatingSum(_ value: (Element) -> Int) -> Int {
        reduce(0) { $0.addingSaturating(value($1)) }
    }
}
