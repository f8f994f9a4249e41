/// Runs one generate call per planned call: shared parts first (or the cache in their
/// place), at most `maxConcurrentCalls` at a time, responses back in call order. Each
/// call goes through the `CallInvoker` (rate limits, timeout, retries, cache bypass).
///
/// A call that fails does not stop the others: when any fail, the stage throws an
/// error that names the failed calls and carries the responses of those that succeeded.
public struct GenerateStage: ExecutionStage {
    public let maxConcurrentCalls: Int
    public let invoker: CallInvoker

    public init(maxConcurrentCalls: Int = 64, invoker: CallInvoker = CallInvoker()) {
        precondition(maxConcurrentCalls >= 1, "maxConcurrentCalls must be at least 1")
        self.maxConcurrentCalls = maxConcurrentCalls
        self.invoker = invoker
    }

    public var kind: StageKind { .generate }

    public func applies(to state: ExecutionState) -> Bool { state.responses.isEmpty }

    /// The request for call `index`: with the cache when it fits the call, else with the shared parts.
    /// A prefix cache (`CacheReference.Kind.prefix`) keeps the shared parts and the system
    /// instruction in the request; a stored cache replaces them.
    public static func request(for state: ExecutionState, call index: Int) -> GenerationRequest {
        let call = state.calls[index]
        if let cache = state.cache, cache.model == call.model,
            call.config.systemInstruction == state.calls[0].config.systemInstruction
        {
            if case .prefix = cache.kind {
                // The provider caches by prefix: the request carries the whole context.
                return GenerationRequest(model: call.model, parts: state.sharedParts + call.parts, config: call.config, cache: cache)
            }
            return GenerationRequest(model: call.model, parts: call.parts, config: call.config.withoutSystemInstruction(), cache: cache)
        }
        return uncachedRequest(for: state, call: index)
    }

    static func uncachedRequest(for state: ExecutionState, call index: Int) -> GenerationRequest {
        let call = state.calls[index]
        return GenerationRequest(model: call.model, parts: state.sharedParts + call.parts, config: call.config)
    }

    /// Tokens the rate limiter charges before call `index`: the planner's estimate when there
    /// is one, else a conservative count from the parts plus the completion allowance.
    static func estimatedTokens(for state: ExecutionState, call index: Int) -> Int {
        let command = state.command
        if command.perCallEstimates.indices.contains(index) { return command.perCallEstimates[index].expectedTokens }
        if let estimate = command.tokenEstimate { return max(1, estimate.expectedTokens / max(1, state.calls.count)) }
        let parts = state.sharedParts + state.calls[index].parts
        let prompt = parts.saturatingSum { part in
            switch part {
            case .text(let text): text.utf8.count / 3 + 1
            case .fileRef, .filePlaceholder, .inline: 1024
            case .history(let h): h.turns.saturatingSum { ($0.question.utf8.count + $0.answer.utf8.count) / 3 + 2 }
            }
        }
        return prompt.addingSaturating(state.calls[index].config.maxTokens ?? 1024)
    }

    private func invoke(_ index: Int, _ state: ExecutionState, _ planLimiter: RateLimiter?, _ provider: any GenerationCapability) async -> CallInvoker.Outcome {
        let request = Self.request(for: state, call: index)
        let uncached = request.cache == nil ? nil : Self.uncachedRequest(for: state, call: index)
        return await invoker.invoke(
            request, uncached: uncached, callIndex: index, estimatedTokens: Self.estimatedTokens(for: state, call: index),
            planLimiter: planLimiter, provider: provider)
    }

    public func execute(_ state: ExecutionState, provider: any GenerationCapability) async throws(APIError) -> ExecutionState {
        let count = state.calls.count
        let planLimiter = state.plan.rateConstraint.map {
            RateLimiter(
                requestsPerMinute: $0.requestsPerMinute, tokensPerMinute: $0.tokensPerMinute, maxPause: invoker.policy.maxRetryAfter, clock: invoker.clock)
        }
        if count == 1 {
            let outcome = await invoke(0, state, planLimiter, provider)
            switch outcome.result {
            case .success(let response):
                return state.with(responses: [CallResponse(callIndex: 0, response: response)], calls: [outcome.telemetry])
            case .failure(var error):
                error.failedCalls = [0]
                error.callTelemetry = [outcome.telemetry]
                throw error
            }
        }

        let limit = maxConcurrentCalls
        let outcomes = await withTaskGroup(of: (Int, CallInvoker.Outcome).self) { group in
            var results = [CallInvoker.Outcome?](repeating: nil, count: count)
            var next = 0
            func launch() {
                let index = next
                group.addTask { (index, await invoke(index, state, planLimiter, provider)) }
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
        var calls: [CallTelemetry] = []
        for (index, outcome) in outcomes.enumerated() {
            guard let outcome else {
                failures.append((index, APIError(.cancelled, "call \(index) was not started: the command was cancelled")))
                continue
            }
            calls.append(outcome.telemetry)
            switch outcome.result {
            case .success(let response): responses.append(CallResponse(callIndex: index, response: response))
            case .failure(let error): failures.append((index, error))
            }
        }
        guard let (firstIndex, firstError) = failures.first else {
            return state.with(responses: responses, calls: calls)
        }
        var error = firstError
        if failures.allSatisfy({ $0.1.kind == .cancelled }) {
            error = APIError(.cancelled, "the command was cancelled during generation", provider: provider.providerName)
        } else {
            error.message = "\(failures.count) of \(count) calls failed; first, call \(firstIndex): \(firstError.message)"
        }
        error.failedCalls = failures.map(\.0)
        error.partialResponses = responses
        error.callTelemetry = calls
        throw error
    }
}
