/// Lets whoever runs a command use the time the command waits for something that needs
/// nothing it holds: a retry's backoff (`Retrier`), or work another command is making for it
/// (an upload or a cache creation in flight, `SingleFlight`). Not a rate limit, which must
/// hold. The waiting code tells the lender of the task it runs in (`BackoffScope.lender`)
/// when a wait starts and when it ends, and goes on only once `backoffEnded` returns. The
/// CLI lends the command's `--concurrency` slot this way.
///
/// Shared work itself never lends (`SingleFlight` runs it with no lender): a command waiting
/// for it may hold a slot, so the work must never need one back (`Design/resilience.md`).
package protocol BackoffLender: Sendable {
    /// The current command starts waiting (a backoff, or another command's shared work).
    func backoffStarted()
    /// The wait is over (or was cancelled): returns when the command may go on working.
    func backoffEnded() async
    /// The current command starts waiting for a rate limiter (`RateLimitUnit`). It keeps what
    /// it holds (every other command would wait too): this is for counting, e.g. the progress
    /// line's "waiting on rate limit". By default nothing.
    func rateLimitWaitStarted()
    /// The rate limiter's wait is over (granted or cancelled). By default nothing.
    func rateLimitWaitEnded()
    /// The current command starts waiting for a deployment of a router (`RoutedProvider`):
    /// every one of the model's is cooling, held, full or at its own limit. It keeps what it
    /// holds, as for a rate limit; for counting ("waiting on a deployment"). By default nothing.
    func deploymentWaitStarted()
    /// The wait for a deployment is over (one took the call, or cancelled). By default nothing.
    func deploymentWaitEnded()
}

extension BackoffLender {
    public func rateLimitWaitStarted() {}
    public func rateLimitWaitEnded() {}
    public func deploymentWaitStarted() {}
    public func deploymentWaitEnded() {}
}

/// The lender of the task a command runs in, if its runner set one.
package enum BackoffScope {
    @TaskLocal public static var lender: (any BackoffLender)?
}
