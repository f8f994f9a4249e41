/// The engine's one retry layer: every request the engine makes of a provider — a
/// generate call, an upload, a cache creation — goes through `run`, so the same
/// `RetryPolicy` (attempts, backoff, jitter, capped `Retry-After`) applies to all of them.
/// Adapters never retry on their own.
package struct Retrier: Sendable {
    public var policy: RetryPolicy
    public var clock: any PipelineClock
    /// A number in 0..<1 for jitter; tests pass a constant.
    public var random: @Sendable () -> Double
    /// The limiter a rate-limited failure pauses (the engine's): a 429 on any request — a call,
    /// an upload, a cache creation — holds the calls after it back, limits configured or not.
    public var pausing: RateLimiter?

    public init(
        policy: RetryPolicy = RetryPolicy(), clock: any PipelineClock = SystemClock(), random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        pausing: RateLimiter? = nil
    ) {
        self.policy = policy
        self.clock = clock
        self.random = random
        self.pausing = pausing
    }

    /// What `run` did: the final result, the attempts made and the time spent waiting between them.
    package struct Outcome<Value: Sendable>: Sendable {
        public var result: Result<Value, APIError>
        public var attempts: Int
        public var waited: Duration
    }

    /// Where the loop records what it decides, as it decides it: each failed attempt (and
    /// whether another follows) and each backoff, as events of call `call` in `log`.
    package struct Observer: Sendable {
        public let log: EventLog
        public let call: Int
        /// Added to the loop's attempt numbers in the events (a repair's attempts follow the call's earlier ones).
        public let attemptsBefore: Int

        public init(log: EventLog, call: Int, attemptsBefore: Int = 0) {
            self.log = log
            self.call = call
            self.attemptsBefore = attemptsBefore
        }

        func failed(_ attempt: Int, _ error: APIError, _ willRetry: Bool) {
            log.record(.attemptFailed(call: call, attempt: attempt.addingSaturating(attemptsBefore), error: error, willRetry: willRetry))
        }

        func waiting(_ delay: Duration) { log.record(.waiting(call: call, reason: PipelineEvent.WaitReason.backoff.rawValue, duration: delay)) }
    }

    /// Calls `attempt` (with the 1-based attempt number) until it succeeds, fails with an
    /// error that is not retryable, or `maxAttempts` (default: the policy's) are used up.
    /// Cancellation while waiting ends the loop with a `cancelled` error made by `cancelled`.
    /// `first`, when given, is the result of attempt 1, already made by the caller.
    public func run<Value: Sendable>(
        maxAttempts: Int? = nil, cancelled: @autoclosure () -> APIError, observer: Observer? = nil, first: Result<Value, APIError>? = nil,
        _ attempt: (Int) async -> Result<Value, APIError>
    ) async -> Outcome<Value> {
        let limit = max(1, maxAttempts ?? policy.maxAttempts)
        var waited = Duration.zero
        var number = 0
        var made = first
        while true {
            number += 1
            let result: Result<Value, APIError>
            if let done = made {
                result = done
                made = nil
            } else {
                result = await attempt(number)
            }
            guard case .failure(let error) = result else { return Outcome(result: result, attempts: number, waited: waited) }
            if error.kind == .rateLimited { pausing?.throttle(after: error) }
            if error.kind == .cancelled || Task.isCancelled {
                observer?.failed(number, error, false)
                return Outcome(result: .failure(error.kind == .cancelled ? error : cancelled()), attempts: number, waited: waited)
            }
            guard error.retryable && number < limit else {
                observer?.failed(number, error, false)
                return Outcome(result: result, attempts: number, waited: waited)
            }
            observer?.failed(number, error, true)
            let delay = policy.delay(after: number, error: error, random: policy.jitter > 0 ? random() : 0)
            observer?.waiting(delay)
            // The runner may lend the command's slot while it waits (`BackoffScope`); inside
            // shared work (`SingleFlight`) there is no lender: the maker keeps its slot.
            let lender = BackoffScope.lender
            lender?.backoffStarted()
            do {
                try await clock.sleep(for: delay)
            } catch {
                await lender?.backoffEnded()
                return Outcome(result: .failure(cancelled()), attempts: number, waited: waited)
            }
            await lender?.backoffEnded()
            waited += delay
        }
    }
}
