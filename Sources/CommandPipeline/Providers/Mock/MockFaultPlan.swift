/// Faults the mock injects, decided per generate call by a seeded generator: the same
/// seed gives the same sequence of faults for the same sequence of calls.
package struct MockFaultPlan: Sendable, Hashable {
    /// Fraction of calls failing with a retryable `unavailable` error.
    public var retryable: Double
    /// The `Retry-After` carried by retryable faults; `nil` for none.
    public var retryAfter: Duration?
    /// Fraction of calls failing with a non-retryable error.
    public var fatal: Double
    /// Fraction of calls that never answer (until cancelled, e.g. by a timeout).
    public var hang: Double
    /// Extra latency drawn uniformly from 0..<jitter for each call.
    public var jitter: Duration
    public var seed: UInt64
    /// The first this many uploads of each file (by path) fail with a retryable `unavailable`
    /// error (carrying `retryAfter`): a Files API that fails N times, then works.
    public var uploadFailures: Int
    /// The same for the creations of each cache (by key).
    public var cacheFailures: Int

    public init(
        retryable: Double = 0, retryAfter: Duration? = nil, fatal: Double = 0, hang: Double = 0, jitter: Duration = .zero, seed: UInt64 = 0,
        uploadFailures: Int = 0, cacheFailures: Int = 0
    ) {
        self.uploadFailures = max(0, uploadFailures)
        self.cacheFailures = max(0, cacheFailures)
        self.retryable = retryable
        self.retryAfter = retryAfter
        self.fatal = fatal
        self.hang = hang
        self.jitter = jitter
        self.seed = seed
    }

    /// What happens to one call.
    package enum Fault: Equatable {
        case none
        case retryable
        case fatal
        case hang
    }

    /// The fault and extra latency for the `n`-th call.
    package func draw(_ n: UInt64) -> (Fault, Duration) {
        var generator = SplitMix64(seed: seed &+ n &* 0x9E37_79B9_7F4A_7C15)
        let roll = generator.nextUnit()
        let extra = jitter == .zero ? Duration.zero : jitter * generator.nextUnit()
        if roll < retryable { return (.retryable, extra) }
        if roll < retryable + fatal { return (.fatal, extra) }
        if roll < retryable + fatal + hang { return (.hang, extra) }
        return (.none, extra)
    }

    /// Parses `retryable=0.2,retry_after_ms=100,fatal=0.02,hang=0.01,jitter_ms=5,seed=7,upload_failures=1,cache_failures=2`.
    public static func parse(_ spec: String) -> Result<MockFaultPlan, APIError> {
        var plan = MockFaultPlan()
        for item in spec.split(separator: ",", omittingEmptySubsequences: true) {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else {
                return .failure(APIError(.invalidCommand, "fault '\(item)' is not key=value"))
            }
            let (key, value) = (pair[0], pair[1])
            func fraction() -> Double? { Double(value).flatMap { (0...1).contains($0) ? $0 : nil } }
            func count() -> Int? { Int(value).flatMap { (0...1_000_000_000).contains($0) ? $0 : nil } }
            func milliseconds() -> Int? { Int(value).flatMap { (0...86_400_000).contains($0) ? $0 : nil } }
            switch key {
            case "retryable": guard let f = fraction() else { return bad(key, value, "a fraction from 0 to 1") }; plan.retryable = f
            case "fatal": guard let f = fraction() else { return bad(key, value, "a fraction from 0 to 1") }; plan.fatal = f
            case "hang": guard let f = fraction() else { return bad(key, value, "a fraction from 0 to 1") }; plan.hang = f
            case "retry_after_ms": guard let ms = milliseconds() else { return bad(key, value, "whole milliseconds from 0 to 86400000 (one day)") }; plan.retryAfter = .milliseconds(ms)
            case "jitter_ms": guard let ms = milliseconds() else { return bad(key, value, "whole milliseconds from 0 to 86400000 (one day)") }; plan.jitter = .milliseconds(ms)
            case "upload_failures": guard let n = count() else { return bad(key, value, "a whole number from 0 to 1000000000") }; plan.uploadFailures = n
            case "cache_failures": guard let n = count() else { return bad(key, value, "a whole number from 0 to 1000000000") }; plan.cacheFailures = n
            case "seed": guard let seed = UInt64(value) else { return bad(key, value, "a whole number ≥ 0") }; plan.seed = seed
            default:
                return .failure(APIError(.invalidCommand, "unknown fault '\(key)'; known: retryable, retry_after_ms, fatal, hang, jitter_ms, seed, upload_failures, cache_failures"))
            }
        }
        if plan.retryable + plan.fatal + plan.hang > 1 {
            return .failure(APIError(.invalidCommand, "retryable + fatal + hang add up to more than 1"))
        }
        return .success(plan)
    }

    private static func bad(_ key: String, _ value: String, _ expected: String) -> Result<MockFaultPlan, APIError> {
        .failure(APIError(.invalidCommand, "fault \(key)=\(value): expected \(expected)"))
    }
}

/// A small, fast, seedable generator (Steele, Lea, Flood 2014).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A number in 0..<1.
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
