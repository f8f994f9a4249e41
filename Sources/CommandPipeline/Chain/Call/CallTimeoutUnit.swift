/// Bounds each attempt: one that takes longer fails with a retryable `timeout`.
package struct CallTimeoutUnit: ChainUnit {
    public let timeout: Duration
    private let scheduler: DeadlineScheduler

    public init(timeout: Duration, clock: any PipelineClock) {
        self.timeout = timeout
        self.scheduler = DeadlineScheduler(clock: clock)
    }

    public func handle(_ input: CallInput, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        switch await scheduler.race(timeout, { await next(input) }) {
        case .finished(let result):
            return result
        case .expired(.success(let response)):
            return .success(response)
        case .expired(.failure(let error)) where !error.retryable && error.kind != .cancelled:
            // The provider's own final verdict (a refused request, say) that lost the race with
            // the deadline by a hair: it is what the provider said, and a retry could not change
            // it, so it is reported as itself, not as a retryable timeout.
            return .failure(error)
        case .expired(.failure):
            // Whatever the cut-off attempt said last (a cancellation, or the error a connection
            // torn down by it raised), the deadline is why it ended.
            return .failure(APIError(
                .timeout, "call \(input.callIndex) (\(input.request.model)) timed out after \(timeout.formattedSeconds) (per-call timeout)",
                provider: input.provider.providerName, retryable: true))
        }
    }
}

extension Duration {
    /// "1.5 s", for messages.
    var formattedSeconds: String {
        let seconds = Double(components.seconds) + Double(components.attoseconds) / 1e18
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
    }
}
