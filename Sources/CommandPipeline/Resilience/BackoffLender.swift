/// Lets whoever runs a command use the time its calls wait out a retry's backoff (not a rate
/// limit, which must hold): the `Retrier` tells the lender of the task it runs in
/// (`BackoffLender.current`) when a wait starts and when it ends, and goes on only once
/// `backoffEnded` returns. The CLI lends the command's `--concurrency` slot this way.
public protocol BackoffLender: Sendable {
    /// A retry of the current command starts waiting.
    func backoffStarted()
    /// The wait is over (or was cancelled): returns when the command may go on working.
    func backoffEnded() async
}

/// The lender of the task a command runs in, if its runner set one.
public enum BackoffScope {
    @TaskLocal public static var lender: (any BackoffLender)?
}
