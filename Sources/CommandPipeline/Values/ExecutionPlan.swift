/// Everything one command will do: calls that share context, uploads, cache, fallback.
public struct ExecutionPlan: Sendable, Hashable {
    /// At least one call.
    public var calls: [APICall]
    /// Sent before each call's own parts; the content of the cache when `cache` is set.
    public var sharedParts: [APIPart]
    /// Run once, with the shared parts but no uploads of its own and no cache, when the primary fails.
    public var fallbackCall: APICall?
    /// Explicit uploads. When empty, every placeholder is an optional upload.
    public var uploadTasks: [UploadTask]
    public var cache: CachePlan?
    public var rateConstraint: RateConstraint?

    public init(
        calls: [APICall], sharedParts: [APIPart] = [], fallbackCall: APICall? = nil,
        uploadTasks: [UploadTask] = [], cache: CachePlan? = nil, rateConstraint: RateConstraint? = nil
    ) {
        self.calls = calls
        self.sharedParts = sharedParts
        self.fallbackCall = fallbackCall
        self.uploadTasks = uploadTasks
        self.cache = cache
        self.rateConstraint = rateConstraint
    }

    /// A single-call plan.
    public init(call: APICall, fallbackCall: APICall? = nil) {
        self.init(calls: [call], fallbackCall: fallbackCall)
    }
}
