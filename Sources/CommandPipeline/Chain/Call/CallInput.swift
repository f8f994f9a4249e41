/// What flows into the call chain: one call of a plan, and what the units around it need.
public struct CallInput: Sendable {
    public var request: GenerationRequest
    /// The same call with the shared parts instead of the cache, when `request` uses one.
    public var uncached: GenerationRequest?
    /// Attempts the retry unit may make; nil for the policy's.
    public var maxAttempts: Int?
    public let callIndex: Int
    private let fixed: Fixed

    private struct Fixed: Sendable {
        let path: String
        let state: ExecutionState
        let planLimiter: RateLimiter?
        let provider: any GenerationCapability
        let log: EventLog
        let streaming: Bool
    }

    /// Where the call sits in the command (`plan.calls[2]`, `plan.fallback_call`), for errors.
    public var path: String { fixed.path }
    /// The state the call was made from (the rate limiter estimates tokens from it).
    public var state: ExecutionState { fixed.state }
    /// The plan's own `rate_constraint`, shared by its calls.
    public var planLimiter: RateLimiter? { fixed.planLimiter }
    public var provider: any GenerationCapability { fixed.provider }
    public var log: EventLog { fixed.log }
    /// Stream text deltas when the provider can.
    public var streaming: Bool { fixed.streaming }

    public init(
        request: GenerationRequest, uncached: GenerationRequest? = nil, callIndex: Int, path: String, state: ExecutionState,
        planLimiter: RateLimiter? = nil, maxAttempts: Int? = nil, provider: any GenerationCapability, log: EventLog, streaming: Bool = false
    ) {
        self.request = request
        self.uncached = uncached
        self.callIndex = callIndex
        self.maxAttempts = maxAttempts
        self.fixed = Fixed(path: path, state: state, planLimiter: planLimiter, provider: provider, log: log, streaming: streaming)
    }

    func cancelled() -> APIError {
        APIError(.cancelled, "call \(callIndex) was cancelled", provider: provider.providerName)
    }
}

/// The call chain's type: a call in, the provider's answer (or why not) out.
public typealias CallChain = Chain<CallInput, Result<GenerationResponse, APIError>>
