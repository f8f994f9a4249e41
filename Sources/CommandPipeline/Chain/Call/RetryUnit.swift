/// Retries a call's retryable failures through the engine's one `Retrier` (the same policy
/// as uploads and cache creation), recording each attempt, each failure (and whether it
/// will be retried) and each backoff. A failure after streamed text is never retried, whatever
/// raised it (`ProviderCall.interrupted`).
package struct RetryUnit: ChainUnit {
    public let retrier: Retrier

    public init(retrier: Retrier) { self.retrier = retrier }

    @inline(__always)
    public func handle(_ input: CallInput, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        // The first attempt is made here: most calls succeed at once and need no retry loop.
        input.log.record(.attemptStarted(call: input.callIndex, attempt: 1 + input.attemptsBefore, model: input.request.model, cached: input.request.hasCache))
        let first = await next(input)
        guard case .failure(let error) = first else { return first }
        return await retry(input, after: error, next: next)
    }

    /// The attempts after a failed first one. (Out of line: the retry loop's frame is large, and
    /// a call that succeeds at once should not carry it.)
    @inline(never)
    private func retry(_ input: CallInput, after error: APIError, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        let log = input.log, call = input.callIndex, before = input.attemptsBefore
        let outcome = await retrier.run(
            maxAttempts: input.maxAttempts, cancelled: input.cancelled(), observer: Retrier.Observer(log: log, call: call, attemptsBefore: before),
            first: .failure(ProviderCall.interrupted(error, input))
        ) { attempt in
            log.record(.attemptStarted(call: call, attempt: attempt + before, model: input.request.model, cached: input.request.hasCache))
            return await next(input).mapError { ProviderCall.interrupted($0, input) }
        }
        return outcome.result
    }
}
