/// What flows into the call chain: one call of a plan, and what the units around it need.
/// (What no unit changes is held in one box: the input is copied at every unit.)
public struct CallInput: Sendable {
    public var request: GenerationRequest
    /// The same call with the shared parts instead of the cache, when `request` uses one.
    public var uncached: GenerationRequest?
    /// Attempts the retry unit may make; nil for the policy's.
    public var maxAttempts: Int?
    public let callIndex: Int
    private let fixed: Box<Fixed>

    private struct Fixed: Sendable {
        let path: String
        let state: ExecutionState
        let planLimiter: RateLimiter?
        let provider: any GenerationCapability
        let log: EventLog
        let streaming: Bool
    }

    /// Where the call sits in the command (`plan.calls[2]`, `plan.fallback_call`), for errors.
    public var path: String { fixed.value.path }
    /// The state the call was made from (the rate limiter estimates tokens from it).
    public var state: ExecutionState { fixed.value.state }
    /// The plan's own `rate_constraint`, shared by its calls.
    public var planLimiter: RateLimiter? { fixed.value.planLimiter }
    public var provider: any GenerationCapability { fixed.value.provider }
    public var log: EventLog { fixed.value.log }
    /// Stream text deltas when the provider can.
    public var streaming: Bool { fixed.value.streaming }

    public init(
        request: GenerationRequest, uncached: GenerationRequest? = nil, callIndex: Int, path: String, state: ExecutionState,
        planLimiter: RateLimiter? = nil, maxAttempts: Int? = nil, provider: any GenerationCapability, log: EventLog, streaming: Bool = false
    ) {
        self.request = request
        self.uncached = uncached
        self.callIndex = callIndex
        self.maxAttempts = maxAttempts
        self.fixed = Box(Fixed(path: path, state: state, planLimiter: planLimiter, provider: provider, log: log, streaming: streaming))
    }

    func cancelled() -> APIError {
        APIError(.cancelled, "call \(callIndex) was cancelled", provider: provider.providerName)
    }
}

/// The call chain's type: a call in, the provider's answer (or why not) out.
public typealias CallChain = Chain<CallInput, Result<GenerationResponse, APIError>>
