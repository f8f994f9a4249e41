/// Latencies in fixed memory, for percentiles over any number of calls: log-linear buckets
/// (each power of two of microseconds split into 32), so a percentile is read to within 1/32
/// (about 3%) of the true value, exactly below 32 µs, whatever the count. Counts saturate.
package struct LatencyHistogram: Sendable, Hashable {
    private static let subBuckets = 32
    private static let subBits = 5
    /// Up to 2^49 µs (about 18 years); longer values count in the last bucket.
    private static let powers = 45

    private var counts: [Int]
    public private(set) var count = 0

    public init() { counts = [Int](repeating: 0, count: Self.powers * Self.subBuckets) }

    public mutating func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        let micros = overflow
            ? (seconds > 0 ? Int.max : 0)
            : max(0, Int(scaled).addingSaturating(Int(attoseconds / 1_000_000_000_000)))
        let index = min(Self.index(of: micros), counts.count - 1)
        counts[index] = counts[index].addingSaturating(1)
        count = count.addingSaturating(1)
    }

    /// The bucket of `micros`: values below 32 have one each; above, the power of two and the
    /// next five bits.
    package static func index(of micros: Int) -> Int {
        guard micros >= subBuckets else { return micros }
        let power = (Int.bitWidth - 1) - micros.leadingZeroBitCount   // ≥ 5
        let sub = (micros >> (power - subBits)) & (subBuckets - 1)
        return (power - subBits + 1) * subBuckets + sub
    }

    /// The smallest value of bucket `index` and the next bucket's.
    package static func bounds(of index: Int) -> (low: Int, high: Int) {
        guard index >= subBuckets else { return (index, index + 1) }
        let power = index / subBuckets + subBits - 1
        let sub = index % subBuckets
        let step = 1 << (power - subBits)
        let low = (1 << power) + sub * step
        return (low, low + step)
    }

    /// The `p`-th percentile (0 < p ≤ 1): the midpoint of the bucket holding the value of rank
    /// ⌈p × count⌉; zero with no values. A `p` out of range is clamped (NaN reads as the
    /// smallest value), so no argument and no count can trap.
    public func percentile(_ p: Double) -> Duration {
        guard count > 0 else { return .zero }
        let rank = Self.rank(p, of: count)
        var seen = 0
        for (index, n) in counts.enumerated() where n > 0 {
            seen = seen.addingSaturating(n)
            if seen >= rank {
                let (low, high) = Self.bounds(of: index)
                return .microseconds(high - low == 1 ? low : (low + high) / 2)
            }
        }
        return .zero
    }

    /// ⌈p × count⌉ within 1…count, computed without converting an out-of-range `Double` to
    /// `Int` (which traps): NaN and p ≤ 0 give 1, p ≥ 1 gives `count`.
    package static func rank(_ p: Double, of count: Int) -> Int {
        guard count > 0 else { return 0 }
        guard p > 0 else { return 1 }                       // also NaN
        guard p < 1 else { return count }
        let product = (p * Double(count)).rounded(.up)
        // Double(count) can round above Int.max when count is near it; clamp before converting.
        guard product < Double(count) else { return count }
        return max(1, Int(product))
    }
}
