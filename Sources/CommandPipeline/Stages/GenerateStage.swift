/// Runs one generate call per planned call: shared parts first (or the cache in their
/// place), at most `maxConcurrentCalls` at a time, responses back in call order.
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
    public static func request(for state: ExecutionState, call index: Int) -> GenerationRequest {
        let call = state.calls[index]
        if let cache = state.cache, cache.model == call.model,
            call.config.systemInstruction == state.calls[0].config.systemInstruction
        {
            return GenerationRequest(model: call.model, parts: call.parts, config: call.config.withoutSystemInstruction(), cache: cache)
        }
        return GenerationRequest(model: call.model, parts: state.sharedParts + call.parts, config: call.config)
    }

    public func execute(_ state: ExecutionState, provider: any GenerationCapability) async throws(APIError) -> ExecutionState {
        let count = state.calls.count
        if count == 1 {
            let outcome = await invoker.invoke(Self.request(for: state, call: 0), callIndex: 0, provider: provider)
            switch outcome.result {
            case .success(let response):
                return state.with(responses: [CallResponse(callIndex: 0, response: response)], retries: outcome.retries)
            case .failure(var error):
                error.failedCalls = [0]
                throw error
            }
        }

        let invoker = self.invoker
        let limit = maxConcurrentCalls
        let outcomes = await withTaskGroup(of: (Int, CallInvoker.Outcome).self) { group in
            var results = [CallInvoker.Outcome?](repeating: nil, count: count)
            var next = 0
            func launch() {
                let index = next
                let request = Self.request(for: state, call: index)
                group.addTask { (index, await invoker.invoke(request, callIndex: index, provider: provider)) }
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
        var retries = 0
        for (index, outcome) in outcomes.enumerated() {
            guard let outcome else {
                failures.append((index, APIError(.cancelled, "call \(index) was not started: the command was cancelled")))
                continue
            }
            retries += outcome.retries
            switch outcome.result {
            case .success(let response): responses.append(CallResponse(callIndex: index, response: response))
            case .failure(let error): failures.append((index, error))
            }
        }
        guard let (firstIndex, firstError) = failures.first else {
            return state.with(responses: responses, retries: retries)
        }
        var error = firstError
        if failures.allSatisfy({ $0.1.kind == .cancelled }) {
            error = APIError(.cancelled, "the command was cancelled during generation", provider: provider.providerName)
        } else {
            error.message = "\(failures.count) of \(count) calls failed; first, call \(firstIndex): \(firstError.message)"
        }
        error.failedCalls = failures.map(\.0)
        error.partialResponses = responses
        error.retries = retries
        throw error
    }
}
