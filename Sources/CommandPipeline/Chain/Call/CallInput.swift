/// What flows into the call chain: one call of a plan, and what the units around it need.
public struct CallInput: Sendable {
    public var request: GenerationRequest
    /// The same call with the shared parts instead of the cache, when `request` uses one.
    public var uncached: GenerationRequest?
    public let callIndex: Int
    /// Where the call sits in the command (`plan.calls[2]`, `plan.fallback_call`), for errors.
    public let path: String
    /// The state the call was made from (the rate limiter estimates tokens from it).
    public let state: ExecutionState
    /// The plan's own `rate_constraint`, shared by its calls.
    public let planLimiter: RateLimiter?
    /// Attempts the retry unit may make; nil for the policy's.
    public var maxAttempts: Int?
    public let provider: any GenerationCapability
    public let log: EventLog
    /// Stream text deltas when the provider can.
    public let streaming: Bool

    public init(
        request: GenerationRequest, uncached: GenerationRequest? = nil, callIndex: Int, path: String, state: ExecutionState,
        planLimiter: RateLimiter? = nil, maxAttempts: Int? = nil, provider: any GenerationCapability, log: EventLog, streaming: Bool = false
    ) {
        self.request = request
        self.uncached = uncached
        self.callIndex = callIndex
        self.path = path
        self.state = state
        self.planLimiter = planLimiter
        self.maxAttempts = maxAttempts
        self.provider = provider
        self.log = log
        self.streaming = streaming
    }

    func cancelled() -> APIError {
        APIError(.cancelled, "call \(callIndex) was cancelled", provider: provider.providerName)
    }
}

/// The call chain's type: a call in, the provider's answer (or why not) out.
public typealias CallChain = Chain<CallInput, Result<GenerationResponse, APIError>>
