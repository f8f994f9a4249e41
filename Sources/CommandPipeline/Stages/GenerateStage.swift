/// Runs one generate call per planned call: shared parts first (or the cache in their
/// place), at most `maxConcurrentCalls` at a time, responses back in call order. Each
/// call goes through the call chain (cache bypass, retry, rate limits, timeout, provider).
///
/// A call that fails does not stop the others: each finished call is recorded
/// (`call_finished` / `call_failed`), and when any fail the stage throws an error that
/// names how many; the outcome keeps the responses of those that succeeded.
package struct GenerateStage: ExecutionStage {
    public static let name = "generate"
    public let maxConcurrentCalls: Int
    public let calls: CallChain
    /// Used for the plan's own rate limiter (`rate_constraint`).
    let clock: any PipelineClock
    let maxPause: Duration

    /// A stage whose calls go through `calls` (by default, straight to the provider).
    /// `maxConcurrentCalls` below 1 is taken as 1.
    public init(
        maxConcurrentCalls: Int = 64, calls: CallChain = CallChain([], terminal: ProviderCall.run), clock: any PipelineClock = SystemClock(),
        maxPause: Duration = RetryPolicy().maxRetryAfter
    ) {
        // The engine refuses 0 or less (`EngineConfiguration.validate()`); a stage made directly runs one at a time.
        self.maxConcurrentCalls = max(1, maxConcurrentCalls)
        self.calls = calls
        self.clock = clock
        self.maxPause = maxPause
    }

    public var name: String { Self.name }

    public func applies(to state: ExecutionState) -> Bool { state.responses.isEmpty }

    private func input(_ index: Int, _ state: ExecutionState, _ planLimiter: RateLimiter?, _ context: StageContext) -> CallInput {
        guard state.hasCache else {
            return CallInput(uncachedCall: index, of: state, planLimiter: planLimiter, provider: context.provider, log: context.log, streaming: context.streaming)
        }
        let request = state.request(call: index)
        return CallInput(
            request: request, uncached: !request.hasCache ? nil : state.uncachedRequest(call: index), callIndex: index,
            state: state, planLimiter: planLimiter, provider: context.provider, log: context.log, streaming: context.streaming)
    }

    /// Runs call `index` and records how it ended.
    @inline(__always)
    private func run(_ index: Int, _ state: ExecutionState, _ planLimiter: RateLimiter?, _ context: StageContext) async -> Result<CallResponse, APIError> {
        switch await calls(input(index, state, planLimiter, context)) {
        case .success(let response):
            let answer = CallResponse(callIndex: index, response: response)
            context.log.record(.callFinished(answer))
            return .success(answer)
        case .failure(let error):
            context.log.record(.callFailed(call: index, error: error))
            return .failure(error)
        }
    }

    @inline(__always)
    public func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState {
        let count = state.calls.count
        // Tested on the tag first: mapping the optional copied it, present or not.
        let planLimiter = state.plan.rateConstraint.isPresent ? state.plan.rateConstraint.map {
            RateLimiter(requestsPerMinute: $0.requestsPerMinute, tokensPerMinute: $0.tokensPerMinute, maxPause: maxPause, clock: clock)
        } : nil
        if count == 1 {
            switch await run(0, state, planLimiter, context) {
            case .success(let response): return state.with(responses: [response])
            case .failure(let error): throw error
            }
        }

        return try await fanOut(count, state, planLimiter, context)
    }

    /// Calls of a fan-out, at most `maxConcurrentCalls` at a time. (Not inlined into `execute`:
    /// the task group's frame and metadata were set up for every one-call command too.)
    @inline(never)
    private func fanOut(_ count: Int, _ state: ExecutionState, _ planLimiter: RateLimiter?, _ context: StageContext) async throws(APIError) -> ExecutionState {
        let limit = maxConcurrentCalls
        let outcomes = await withTaskGroup(of: (Int, Result<CallResponse, APIError>).self) { group in
            var results = [Result<CallResponse, APIError>?](repeating: nil, count: count)
            var next = 0
            func launch() {
                let index = next
                group.addTask { (index, await run(index, state, planLimiter, context)) }
                next += 1
            }
            while next < min(limit, count) { launch() }
            for await (index, outcome) in group {
                results[index] = outcome
                if next < count && !Task.isCancelled { launch() }
            }
            return results
        }

        var responses: [CallResponse] = []
        var failures: [(Int, APIError)] = []
        for (index, outcome) in outcomes.enumerated() {
            switch outcome {
            case .success(let response)?: responses.append(response)
            case .failure(let error)?: failures.append((index, error))
            case nil: failures.append((index, APIError(.cancelled, "call \(index) was not started: the command was cancelled")))
            }
        }
        guard let (firstIndex, firstError) = failures.first else { return state.with(responses: responses) }
        if failures.allSatisfy({ $0.1.kind == .cancelled }) {
            throw APIError(.cancelled, "the command was cancelled during generation", provider: context.provider.providerName)
        }
        var error = firstError
        error.message = "\(failures.count) of \(count) calls failed; first, call \(firstIndex): \(firstError.message)"
        throw error
    }
}
