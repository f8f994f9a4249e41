#if canImport(Glibc)
import Glibc
#endif

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

/// Real time, from `ContinuousClock` (on Linux its reading is taken straight from
/// `CLOCK_BOOTTIME`, the clock `ContinuousClock` reads there: a command takes a reading at
/// each stage boundary, and the standard library's conversions were a third of each). Not
/// public: a public initializer's `clock: (any PipelineClock)? = nil` means this one.
package struct SystemClock: PipelineClock {
    private let clock = ContinuousClock()
    #if os(Linux)
    private let originNanoseconds: Int64
    #else
    private let origin: ContinuousClock.Instant
    #endif

    public init() {
        #if os(Linux)
        originNanoseconds = Self.bootTimeNanoseconds()
        #else
        origin = clock.now
        #endif
    }

    public var now: Duration {
        #if os(Linux)
        .nanoseconds(Self.bootTimeNanoseconds() &- originNanoseconds)
        #else
        origin.duration(to: clock.now)
        #endif
    }

    public func sleep(until deadline: Duration) async throws {
        #if os(Linux)
        // Both readings are of CLOCK_BOOTTIME: the deadline, as an instant of ContinuousClock.
        try await clock.sleep(until: clock.now.advanced(by: deadline - now), tolerance: nil)
        #else
        try await clock.sleep(until: origin.advanced(by: deadline), tolerance: nil)
        #endif
    }

    #if os(Linux)
    @inline(__always)
    private static func bootTimeNanoseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_BOOTTIME, &time)
        return Int64(time.tv_sec) &* 1_000_000_000 &+ Int64(time.tv_nsec)
    }
    #endif
}
