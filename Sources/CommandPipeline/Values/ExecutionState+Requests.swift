/// The requests a state describes: what the cache stage asks the provider to cache, what each
/// call sends, and what the rate limiter charges for it. They live on the state, the value
/// they describe, so the stages, the call chain's units and batch planning share one copy and
/// nothing outside a stage calls that stage's helpers.
extension ExecutionState {
    /// The cache request the state's cache plan asks for (the shared parts, the first call's
    /// system instruction and model); nil without a cache plan or calls.
    package var cacheRequest: CacheRequest? {
        guard let plan = cachePlan, let first = calls.first else { return nil }
        let system = first.config.systemInstruction
        let key = plan.key ?? CacheKey.derive(model: first.model, systemInstruction: system, parts: sharedParts)
        return CacheRequest(key: key, model: first.model, systemInstruction: system, parts: sharedParts, ttlSeconds: plan.ttlSeconds)
    }

    /// The request for call `index`: with the cache when it fits the call, else with the shared parts.
    /// A prefix cache (`CacheReference.prefixPartCount`) keeps the shared parts and the system
    /// instruction in the request; a stored cache replaces them.
    public func request(call index: Int) -> GenerationRequest {
        guard let cache else { return uncachedRequest(call: index) }
        let call = calls[index]
        if cache.model == call.model, call.config.systemInstruction == calls[0].config.systemInstruction {
            if cache.prefixPartCount != nil {
                // The provider caches by prefix: the request carries the whole context.
                return GenerationRequest(model: call.model, parts: sharedParts + call.parts, config: call.config, cache: cache)
            }
            return GenerationRequest(model: call.model, parts: call.parts, config: call.config.withoutSystemInstruction(), cache: cache)
        }
        return uncachedRequest(call: index)
    }

    /// Call `index` with the shared parts themselves. Fields are read in place
    /// (`calls[index].model`, …): copying the whole call first retained and released each of
    /// its fields once more per call.
    public func uncachedRequest(call index: Int) -> GenerationRequest {
        let calls = self.calls
        // Without shared parts the call's own array is used as it is (no copy per call).
        let parts = sharedParts.isEmpty ? calls[index].parts : sharedParts + calls[index].parts
        return GenerationRequest(model: calls[index].model, parts: parts, config: calls[index].config)
    }

    /// Tokens the rate limiter charges before call `index`: the planner's estimate when there
    /// is one, else a conservative count from the parts plus the completion allowance.
    public func estimatedTokens(call index: Int) -> Int {
        if command.perCallEstimates.indices.contains(index) { return command.perCallEstimates[index].expectedTokens }
        if let estimate = command.tokenEstimate { return max(1, estimate.expectedTokens / max(1, calls.count)) }
        let parts = sharedParts + calls[index].parts
        let prompt = parts.saturatingSum { part in
            switch part {
            case .text(let text): text.utf8.count / 3 + 1
            case .fileRef, .filePlaceholder, .inline: 1024
            case .history(let h): h.saturatingSum { ($0.question.utf8.count + $0.answer.utf8.count) / 3 + 2 }
            case .toolResult(let r): r.contentText.utf8.count / 3 + 2
            }
        }
        return prompt.addingSaturating(calls[index].config.maxTokens ?? 1024)
    }
}
