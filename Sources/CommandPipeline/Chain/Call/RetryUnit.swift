/// Retries a call's retryable failures through the engine's one `Retrier` (the same policy
/// as uploads and cache creation), recording each attempt, each failure (and whether it
/// will be retried) and each backoff. A failure after streamed text is never retried.
public struct RetryUnit: ChainUnit {
    public let retrier: Retrier

    public init(retrier: Retrier) { self.retrier = retrier }

    public func handle(_ input: CallInput, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        let log = input.log, call = input.callIndex
        let observer = Retrier.Observer(
            failed: { attempt, error, willRetry in log.record(.attemptFailed(call: call, attempt: attempt, error: error.summary, willRetry: willRetry)) },
            waiting: { delay in log.record(.waiting(call: call, reason: .backoff, duration: delay)) })
        let outcome = await retrier.run(maxAttempts: input.maxAttempts, cancelled: input.cancelled(), observer: observer) { attempt in
            log.record(.attemptStarted(call: call, attempt: attempt, model: input.request.model, cached: input.request.cache != nil))
            return await next(input)
        }
        return outcome.result
    }
}
