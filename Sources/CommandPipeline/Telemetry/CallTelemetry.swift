/// What happened to one call: how many attempts, how long it waited between them, and
/// whether it was retried without the cache.
package struct CallTelemetry: Sendable, Hashable {
    public var callIndex: Int
    /// Attempts made, the first included.
    public var attempts: Int
    /// Time spent waiting for backoff or `Retry-After` between attempts.
    public var retryWait: Duration
    /// The call used a cache, failed, and was retried once without it.
    public var cacheBypassed: Bool
    /// Answers re-asked because they broke the call's `response_format` (`RepairUnit`).
    public var repairs: Int = 0
    /// What the response cache did for the call; nil without one (`ResponseCacheUnit`).
    public var responseCache: ResponseCacheStatus?

    public init(callIndex: Int, attempts: Int = 1, retryWait: Duration = .zero, cacheBypassed: Bool = false) {
        self.callIndex = callIndex
        self.attempts = attempts
        self.retryWait = retryWait
        self.cacheBypassed = cacheBypassed
    }

    /// Attempts after the first that were not repairs.
    public var retries: Int { max(0, attempts - 1 - repairs) }
}
