import Synchronization

/// A configuration value out of its range, found where the configuration is used to make
/// something (`PipelineEngine(provider:configuration:)`, `EngineConfiguration.validate()`).
/// `field` names it as written in Swift (`retryPolicy.maxAttempts`); `message` says what it
/// was and what it may be.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public let field: String
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { message }
}

/// The ranges of an engine's configuration: the same as the CLI's flags (`--max-attempts`,
/// `--call-timeout`, `--timeout`, `--rate-limit-rpm`, `--rate-limit-tpm`), so a value the CLI
/// refuses, the library refuses too.
package enum ConfigurationLimits {
    /// `EngineConfiguration.maxConcurrentCalls`.
    public static let maxConcurrentCalls: ClosedRange<Int> = 1...10_000
    /// `RetryPolicy.maxAttempts` (`--max-attempts`).
    public static let maxAttempts: ClosedRange<Int> = 1...100
    /// `callTimeout` and `commandTimeout` (`--call-timeout`, `--timeout`): 1 ms to one week.
    public static let timeout: ClosedRange<Duration> = .milliseconds(1)...week
    /// `RetryPolicy.baseDelay`, `.maxDelay`, `.maxRetryAfter`: none to one week.
    public static let delay: ClosedRange<Duration> = .zero...week
    /// `RetryPolicy.jitter`: a fraction.
    public static let jitter: ClosedRange<Double> = 0...1
    /// `rateLimit.requestsPerMinute` (`--rate-limit-rpm`).
    public static let requestsPerMinute: ClosedRange<Int> = 1...10_000_000
    /// `rateLimit.tokensPerMinute` (`--rate-limit-tpm`).
    public static let tokensPerMinute: ClosedRange<Int> = 1...10_000_000_000

    private static let week = Duration.seconds(604_800)
}

extension RetryPolicy {
    /// Every field in its range (`ConfigurationLimits`); the engine checks this when it is made.
    /// - Parameter prefix: how the policy is named in the error, e.g. `retryPolicy`.
    public func validate(as prefix: String = "RetryPolicy") throws(ConfigurationError) {
        try ConfigurationCheck.integer(maxAttempts, ConfigurationLimits.maxAttempts, "\(prefix).maxAttempts", unit: "attempts, the first included")
        try ConfigurationCheck.duration(baseDelay, ConfigurationLimits.delay, "\(prefix).baseDelay")
        try ConfigurationCheck.duration(maxDelay, ConfigurationLimits.delay, "\(prefix).maxDelay")
        try ConfigurationCheck.duration(maxRetryAfter, ConfigurationLimits.delay, "\(prefix).maxRetryAfter")
        guard jitter.isFinite, ConfigurationLimits.jitter.contains(jitter) else {
            throw ConfigurationError(field: "\(prefix).jitter", message: "\(prefix).jitter is \(jitter); it must be a fraction from 0 (no jitter) to 1 (full jitter)")
        }
    }
}

extension EngineConfiguration {
    /// Every value in its range (`ConfigurationLimits`, the CLI's flags' ranges), or an error
    /// naming the first that is not. `PipelineEngine(provider:configuration:)` calls it.
    public func validate() throws(ConfigurationError) {
        try ConfigurationCheck.integer(
            maxConcurrentCalls, ConfigurationLimits.maxConcurrentCalls, "EngineConfiguration.maxConcurrentCalls", unit: "calls in flight per command")
        try retryPolicy.validate(as: "EngineConfiguration.retryPolicy")
        try ConfigurationCheck.integer(maxRepairs, Limits.maxRepairs, "EngineConfiguration.maxRepairs", unit: "re-asks of an answer that breaks its format")
        if let callTimeout { try ConfigurationCheck.duration(callTimeout, ConfigurationLimits.timeout, "EngineConfiguration.callTimeout", orNil: true) }
        if let commandTimeout {
            try ConfigurationCheck.duration(commandTimeout, ConfigurationLimits.timeout, "EngineConfiguration.commandTimeout", orNil: true)
        }
        if let rateLimit {
            if let rpm = rateLimit.requestsPerMinute {
                try ConfigurationCheck.integer(
                    rpm, ConfigurationLimits.requestsPerMinute, "EngineConfiguration.rateLimit.requestsPerMinute", unit: "requests a minute", orNil: true)
            }
            if let tpm = rateLimit.tokensPerMinute {
                try ConfigurationCheck.integer(
                    tpm, ConfigurationLimits.tokensPerMinute, "EngineConfiguration.rateLimit.tokensPerMinute", unit: "tokens a minute", orNil: true)
            }
        }
    }
}

private enum ConfigurationCheck {
    static func integer(_ value: Int, _ range: ClosedRange<Int>, _ field: String, unit: String, orNil: Bool = false) throws(ConfigurationError) {
        guard !range.contains(value) else { return }
        let none = orNil ? " (nil for no limit)" : ""
        throw ConfigurationError(
            field: field, message: "\(field) is \(value.grouped); it must be \(range.spelled) (\(unit))\(none)")
    }

    static func duration(_ value: Duration, _ range: ClosedRange<Duration>, _ field: String, orNil: Bool = false) throws(ConfigurationError) {
        guard !range.contains(value) else { return }
        let none = orNil ? " (nil for none)" : ""
        throw ConfigurationError(
            field: field, message: "\(field) is \(value); it must be from \(range.lowerBound) to \(range.upperBound) (one week)\(none)")
    }
}

/// Where retry backoff gets its random numbers (each in 0..<1) for jitter. `.system` for real
/// runs; `.seeded(_:)` repeats the same waits run after run, for tests of retry timing that
/// keep jitter on; or any function of your own.
package struct JitterSource: Sendable {
    /// A number in 0..<1 (a value outside is pinned into it).
    public let next: @Sendable () -> Double

    public init(_ next: @escaping @Sendable () -> Double) { self.next = next }

    /// The system's random numbers.
    public static var system: JitterSource { JitterSource { Double.random(in: 0..<1) } }

    /// The same sequence for the same seed (SplitMix64), shared by every call of the engine.
    public static func seeded(_ seed: UInt64) -> JitterSource {
        let state = Mutex(seed)
        return JitterSource {
            let bits = state.withLock { state -> UInt64 in
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                return z ^ (z >> 31)
            }
            return Double(bits >> 11) / Double(1 << 53)
        }
    }

    /// `next()` pinned into 0..<1 (NaN as 0), as the retrier uses it.
    func pinned() -> Double {
        let value = next()
        guard value.isFinite, value > 0 else { return 0 }
        return min(value, 1.0.nextDown)
    }
}
