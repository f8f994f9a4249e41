import CommandPipeline
/// Real time sped up: `speedup` clock seconds pass per real second. Lets a benchmark or a
/// test exercise per-minute rate limits and long timeouts at scale in a few real seconds,
/// without changing any of the engine's arithmetic.
public struct ScaledClock: PipelineClock {
    private let base = SystemClock()
    public let speedup: Double

    public init(speedup: Double) {
        precondition(speedup > 0, "speedup must be positive")
        self.speedup = speedup
    }

    public var now: Duration { base.now * speedup }

    public func sleep(until deadline: Duration) async throws {
        try await base.sleep(until: deadline / speedup)
    }
}
