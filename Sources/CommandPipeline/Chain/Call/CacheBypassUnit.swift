/// A call that used the cache and failed is tried once more with the shared parts themselves,
/// with the attempts the retry policy has left (at least one). Not after a cancellation, and
/// not once the call has streamed text.
package struct CacheBypassUnit: ChainUnit {
    public let policy: RetryPolicy

    public init(policy: RetryPolicy) { self.policy = policy }

    public func applies(to input: CallInput) -> Bool { input.request.hasCache && input.uncached.isPresent }

    @inline(__always)
    public func handle(_ input: CallInput, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        let result = await next(input)
        guard case .failure(let error) = result, error.kind != .cancelled, input.request.hasCache, let uncached = input.uncached,
            !input.log.hasStreamed(call: input.callIndex)
        else { return result }
        input.log.record(.cacheBypassed(call: input.callIndex))
        var bypass = input
        bypass.request = uncached
        bypass.uncached = nil
        // Attempts of this round only: a repair (`RepairUnit`) starts a new one.
        bypass.maxAttempts = max(1, policy.maxAttempts - (input.log.attempts(call: input.callIndex) - input.attemptsBefore) + 1)
        return await next(bypass)
    }
}
