import Synchronization

/// Counters shared by the run loop and the progress line.
final class Stats: Sendable {
    let succeeded = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let skipped = Atomic<Int>(0)
    let fallbacks = Atomic<Int>(0)
    let tokens = Atomic<Int>(0)
    let inFlight = Atomic<Int>(0)

    var done: Int { succeeded.load(ordering: .relaxed) + failed.load(ordering: .relaxed) + skipped.load(ordering: .relaxed) }
}
