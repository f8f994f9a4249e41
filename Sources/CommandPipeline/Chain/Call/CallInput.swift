/// What flows into the call chain: one call of a plan, and what the units around it need.
package struct CallInput: Sendable {
    /// The request to send.
    public var request: GenerationRequest {
        _read { yield storage.request }
        set { storage = storage.with(request: newValue, uncached: storage.uncached) }
    }
    /// The same call with the shared parts instead of the cache, when `request` uses one.
    public var uncached: GenerationRequest? {
        _read { yield storage.uncached }
        set { storage = storage.with(request: storage.request, uncached: newValue) }
    }
    /// Attempts the retry unit may make; nil for the policy's.
    public var maxAttempts: Int?
    public let callIndex: Int
    // Held behind one reference: a call input passes through every unit's async frame, and
    // inline (two requests and the call's context) it was 600 bytes, copied at each step.
    // Changing a request (the cache bypass) makes a new storage; nothing else changes it.
    private var storage: Storage

    private final class Storage: Sendable {
        let request: GenerationRequest
        let uncached: GenerationRequest?
        /// nil: the state's own path for the call, made only when asked for (errors).
        let path: String?
        let state: ExecutionState
        let planLimiter: RateLimiter?
        let provider: any GenerationCapability
        let log: EventLog
        let streaming: Bool
        /// Attempts of the call made before this input's first (a repair's: `RepairUnit`).
        let attemptsBefore: Int

        init(
            request: GenerationRequest, uncached: GenerationRequest?, path: String?, state: ExecutionState, planLimiter: RateLimiter?,
            provider: any GenerationCapability, log: EventLog, streaming: Bool, attemptsBefore: Int = 0
        ) {
            self.attemptsBefore = attemptsBefore
            self.request = request
            self.uncached = uncached
            self.path = path
            self.state = state
            self.planLimiter = planLimiter
            self.provider = provider
            self.log = log
            self.streaming = streaming
        }

        /// Call `index` of `state` without a cache, its request built in place (built outside and
        /// handed in, the request was copied once more).
        init(uncachedCall index: Int, of state: ExecutionState, planLimiter: RateLimiter?, provider: any GenerationCapability, log: EventLog, streaming: Bool) {
            request = state.uncachedRequest(call: index)
            uncached = nil
            attemptsBefore = 0
            path = nil
            self.state = state
            self.planLimiter = planLimiter
            self.provider = provider
            self.log = log
            self.streaming = streaming
        }

        /// `other`'s call sent to `provider` as `model`, without its cache (`routed(to:model:)`).
        init(routing other: Storage, to provider: any GenerationCapability, model: String) {
            var request = other.request
            request.model = model
            self.request = request
            uncached = nil
            path = other.path
            state = other.state
            planLimiter = other.planLimiter
            self.provider = provider
            log = other.log
            streaming = other.streaming
            attemptsBefore = other.attemptsBefore
        }

        func with(request: GenerationRequest, uncached: GenerationRequest?, attemptsBefore: Int? = nil) -> Storage {
            Storage(
                request: request, uncached: uncached, path: path, state: state, planLimiter: planLimiter, provider: provider, log: log, streaming: streaming,
                attemptsBefore: attemptsBefore ?? self.attemptsBefore)
        }
    }

    /// Where the call sits in the command (`plan.calls[2]`, `plan.fallback_call`), for errors.
    public var path: String { storage.path ?? storage.state.callPaths.path(callIndex) }
    /// The state the call was made from (the rate limiter estimates tokens from it).
    public var state: ExecutionState { _read { yield storage.state } }
    /// The plan's own `rate_constraint`, shared by its calls.
    public var planLimiter: RateLimiter? { storage.planLimiter }
    public var provider: any GenerationCapability { storage.provider }
    public var log: EventLog { storage.log }
    /// Stream text deltas when the provider can.
    public var streaming: Bool { storage.streaming }
    /// Attempts of this call made before this input's first: 0, except for a repair
    /// (`RepairUnit`), whose attempts are numbered after the rejected ones.
    public var attemptsBefore: Int { storage.attemptsBefore }

    /// This call asked again with `request` (and `uncached`), after `attempts` attempts.
    public func repaired(request: GenerationRequest, uncached: GenerationRequest?, after attempts: Int) -> CallInput {
        var input = self
        input.storage = storage.with(request: request, uncached: uncached, attemptsBefore: attempts)
        return input
    }

    /// This call sent to `provider` as `model`: one deployment of a router (`RoutedProvider`).
    /// The request is copied once, into the new storage, its model set there.
    func routed(to provider: any GenerationCapability, model: String) -> CallInput {
        var input = self
        input.storage = Storage(routing: storage, to: provider, model: model)
        return input
    }

    public init(
        request: GenerationRequest, uncached: GenerationRequest? = nil, callIndex: Int, path: String, state: ExecutionState,
        planLimiter: RateLimiter? = nil, maxAttempts: Int? = nil, provider: any GenerationCapability, log: EventLog, streaming: Bool = false
    ) {
        self.callIndex = callIndex
        self.maxAttempts = maxAttempts
        storage = Storage(
            request: request, uncached: uncached, path: path, state: state, planLimiter: planLimiter, provider: provider, log: log, streaming: streaming)
    }

    /// A call of `state` at the state's own path for it (`ExecutionState.callPaths`).
    init(
        request: GenerationRequest, uncached: GenerationRequest?, callIndex: Int, state: ExecutionState, planLimiter: RateLimiter?,
        provider: any GenerationCapability, log: EventLog, streaming: Bool
    ) {
        self.callIndex = callIndex
        self.maxAttempts = nil
        storage = Storage(
            request: request, uncached: uncached, path: nil, state: state, planLimiter: planLimiter, provider: provider, log: log, streaming: streaming)
    }

    /// Call `index` of `state`, which has no cache.
    init(uncachedCall index: Int, of state: ExecutionState, planLimiter: RateLimiter?, provider: any GenerationCapability, log: EventLog, streaming: Bool) {
        callIndex = index
        maxAttempts = nil
        storage = Storage(uncachedCall: index, of: state, planLimiter: planLimiter, provider: provider, log: log, streaming: streaming)
    }

    func cancelled() -> APIError {
        APIError(.cancelled, "call \(callIndex) was cancelled", provider: provider.providerName)
    }
}

/// The call chain's type: a call in, the provider's answer (or why not) out.
package typealias CallChain = Chain<CallInput, Result<GenerationResponse, APIError>>
