import Synchronization

/// Counters shared by the run loop and the progress line.
final class Stats: Sendable {
    let succeeded = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let skipped = Atomic<Int>(0)
    let fallbacks = Atomic<Int>(0)
    let tokens = Atomic<Int>(0)
    let inFlight = Atomic<Int>(0)
    /// Bytes of stdin read so far, and the commands (input values) they held.
    let bytesRead = Atomic<Int>(0)
    let commandsRead = Atomic<Int>(0)
    /// Stdin has ended: `commandsRead` is the run's total.
    let inputEnded = Atomic<Bool>(false)
    /// Commands waiting out a retry's backoff now.
    let waitingOnRetry = Atomic<Int>(0)
    /// Commands held by a rate limiter now (`--rate-limit-rpm/tpm`, or the pause after a 429).
    let waitingOnRateLimit = Atomic<Int>(0)
    /// Commands waiting for a deployment of a router now (`--deployments`: every one cooling, held or full).
    let waitingOnDeployment = Atomic<Int>(0)
    /// Failed commands by error kind (written by the run loop, a failed command at a time).
    let failureKinds = Mutex<[String: Int]>([:])

    var done: Int { succeeded.load(ordering: .relaxed) + failed.load(ordering: .relaxed) + skipped.load(ordering: .relaxed) }
}
