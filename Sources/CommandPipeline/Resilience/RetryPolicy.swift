/// How one call is retried: only retryable errors, with exponential backoff capped at
/// `maxDelay`, jitter, and the provider's `Retry-After` honoured up to `maxRetryAfter`.
/// Made as given, never trapping: an engine made with it checks its ranges (`validate()`,
/// `ConfigurationLimits`) and refuses it with a `ConfigurationError` naming the field.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included; 1 means no retries (1 to 100).
    public var maxAttempts: Int
    /// Delay before the second attempt; doubled for each further one.
    public var baseDelay: Duration
    /// No backoff delay is longer than this.
    public var maxDelay: Duration
    /// Fraction of each delay that is randomised away (0 = none, 1 = "full jitter"), in 0...1.
    public var jitter: Double
    /// A provider's `Retry-After` is honoured up to this long.
    public var maxRetryAfter: Duration

    public init(
        maxAttempts: Int = 3, baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(30),
        jitter: Double = 0.5, maxRetryAfter: Duration = .seconds(60)
    ) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.jitter = jitter
        self.maxRetryAfter = maxRetryAfter
    }

    /// No retries at all.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The wait before attempt `attempt + 1` after `error` (attempt is 1-based);
    /// `random` is a number in 0..<1 used for jitter.
    /// Never traps and never negative, whatever the policy holds (a policy outside its ranges is
    /// refused by the engine, but `Retrier` and the sinks can be given one directly): a jitter
    /// or a random number out of 0...1 (or NaN) counts as the nearest bound (NaN as 0).
    public func delay(after attempt: Int, error: APIError, random: Double) -> Duration {
        if let retryAfter = error.retryAfter { return max(.zero, min(retryAfter, maxRetryAfter)) }
        var backoff = max(.zero, baseDelay)
        let ceiling = max(.zero, maxDelay)
        for _ in 1..<max(1, attempt) where backoff < ceiling { backoff = backoff * 2 }
        backoff = min(backoff, ceiling)
        let fraction = Self.unit(jitter) * Self.unit(random)
        return backoff * (1 - fraction)
    }

    /// `value` within 0...1; NaN is 0.
    private static func unit(_ value: Double) -> Double { value.isNaN ? 0 : min(max(value, 0), 1) }
}
