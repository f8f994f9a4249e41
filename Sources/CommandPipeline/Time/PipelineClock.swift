/// The engine's source of time. Everything that waits or measures goes through it,
/// so tests can drive a `ManualClock` instead of sleeping.
///
/// Time is a `Duration` since the clock's own origin: monotonic, and cheap to compare.
public protocol PipelineClock: Sendable {
    var now: Duration { get }
    /// Suspends until `deadline`; throws `CancellationError` if the task is cancelled first.
    func sleep(until deadline: Duration) async throws
}

extension PipelineClock {
    public func sleep(for duration: Duration) async throws {
        try await sleep(until: now + duration)
    }
}

/// Real time, from `ContinuousClock`.
public struct SystemClock: PipelineClock {
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant

    public init() { origin = clock.now }

    public var now: Duration { origin.duration(to: clock.now) }

    public func sleep(until deadline: Duration) async throws {
        try await clock.sleep(until: origin.advanced(by: deadline), tolerance: nil)
    }
}
