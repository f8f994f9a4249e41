/// Settings of the built-in mock provider.
package struct MockConfiguration: Sendable {
    /// Latency of each generate call.
    public var latency: Duration
    /// Latency of each upload.
    public var uploadLatency: Duration
    /// Latency of each cache creation.
    public var cacheLatency: Duration
    /// Every generate call on these models fails with a retryable `unavailable` error.
    public var failingModels: Set<String>
    /// The capabilities the mock has; it really lacks the others' conformances.
    public var capabilities: Set<ProviderCapability>
    /// Injected faults, decided per call by a seeded generator.
    public var faults: MockFaultPlan?
    /// Time for latency and cache expiry.
    public var clock: any PipelineClock
    /// How long a batch job runs before it ends (on `clock`, or the wall clock with `batchDirectory`).
    public var batchDelay: Duration = .zero
    /// Where batch jobs are kept, one file each, so they outlive the process; nil: in memory.
    public var batchDirectory: String?

    public init(
        latency: Duration = .zero, uploadLatency: Duration = .zero, cacheLatency: Duration = .zero,
        failingModels: Set<String> = [], capabilities: Set<ProviderCapability> = Set(ProviderCapability.allCases),
        faults: MockFaultPlan? = nil, clock: any PipelineClock = SystemClock()
    ) {
        self.faults = faults
        self.latency = latency
        self.uploadLatency = uploadLatency
        self.cacheLatency = cacheLatency
        self.failingModels = failingModels
        self.capabilities = capabilities
        self.clock = clock
    }
}
