/// Sends one call to the provider: through the rate limiters, with a per-call timeout,
/// retrying retryable errors through the engine's `Retrier`, and once more without the
/// cache when a cached call failed. This is the one place a provider's `generate` is called.
public struct CallInvoker: Sendable {
    public struct Outcome: Sendable {
        public var result: Result<GenerationResponse, APIError>
        public var telemetry: CallTelemetry
    }

    public var policy: RetryPolicy { retrier.policy }
    /// Each attempt that takes longer fails with a retryable `timeout`.
    public var callTimeout: Duration?
    public var clock: any PipelineClock { retrier.clock }
    /// Shared by every command of the engine (`--rate-limit-rpm/tpm`).
    public var limiter: RateLimiter?
    /// The engine's one retry layer, shared with uploads and cache creation.
    public let retrier: Retrier
    private let deadlines: DeadlineScheduler

    public init(policy: RetryPolicy = RetryPolicy(), callTimeout: Duration? = nil, clock: any PipelineClock = SystemClock(), limiter: RateLimiter? = nil) {
        self.init(retrier: Retrier(policy: policy, clock: clock), callTimeout: callTimeout, limiter: limiter)
    }

    public init(retrier: Retrier, callTimeout: Duration? = nil, limiter: RateLimiter? = nil) {
        self.retrier = retrier
        self.callTimeout = callTimeout
        self.limiter = limiter
        self.deadlines = DeadlineScheduler(clock: retrier.clock)
    }

    /// One call of a plan.
    /// - Parameters:
    ///   - uncached: the same call with the shared parts instead of the cache, when `request` uses one.
    ///   - estimatedTokens: what the rate limiters charge before the call (corrected after).
    ///   - planLimiter: the plan's own `rate_constraint`, shared by its calls.
    public func invoke(
        _ request: GenerationRequest, uncached: GenerationRequest? = nil, callIndex: Int, estimatedTokens: @autoclosure () -> Int = 0,
        planLimiter: RateLimiter? = nil, provider: any GenerationCapability
    ) async -> Outcome {
        let limiters = [planLimiter, limiter].compactMap { $0 }
        let tokens = limiters.contains { $0.tokensPerMinute != nil } ? estimatedTokens() : 0
        var telemetry = CallTelemetry(callIndex: callIndex, attempts: 0)
        var limiterWait = Duration.zero
        func attempts(of request: GenerationRequest, maxAttempts: Int?) async -> Retrier.Outcome<GenerationResponse> {
            await retrier.run(maxAttempts: maxAttempts, cancelled: cancelled(callIndex, provider)) { _ in
                let (result, waited) = await limitedAttempt(request, callIndex: callIndex, tokens: tokens, limiters: limiters, provider: provider)
                limiterWait += waited
                return result
            }
        }
        var outcome = await attempts(of: request, maxAttempts: nil)
        telemetry.attempts = outcome.attempts
        telemetry.retryWait = outcome.waited
        if case .failure(let error) = outcome.result, error.kind != .cancelled, let uncached, request.cache != nil {
            // A cached call that failed is tried once more with the shared parts themselves,
            // with the attempts the policy has left (at least one).
            telemetry.cacheBypassed = true
            outcome = await attempts(of: uncached, maxAttempts: max(1, policy.maxAttempts - outcome.attempts + 1))
            telemetry.attempts += outcome.attempts
            telemetry.retryWait += outcome.waited
        }
        telemetry.retryWait += limiterWait
        return Outcome(result: outcome.result, telemetry: telemetry)
    }

    /// One attempt through the rate limiters: waits for a grant from each (returning how long
    /// it waited), settles the grant with the real usage, and pauses the limiters on a 429.
    private func limitedAttempt(
        _ request: GenerationRequest, callIndex: Int, tokens: Int, limiters: [RateLimiter], provider: any GenerationCapability
    ) async -> (Result<GenerationResponse, APIError>, Duration) {
        var tickets: [(RateLimiter, RateLimiter.Ticket)] = []
        var waited = Duration.zero
        for limiter in limiters {
            // Time is only counted when the limiter really makes the call wait.
            if let ticket = limiter.tryAcquire(tokens: tokens) {
                tickets.append((limiter, ticket))
                continue
            }
            let start = clock.now
            do {
                tickets.append((limiter, try await limiter.acquire(tokens: tokens)))
                waited += clock.now - start
            } catch {
                return (.failure(cancelled(callIndex, provider)), waited + (clock.now - start))
            }
        }
        let result = await attempt(request, callIndex: callIndex, provider: provider)
        switch result {
        case .success(let response):
            for (limiter, ticket) in tickets {
                limiter.settle(ticket, actualTokens: response.usage.totalTokens)
                limiter.recordSuccess()
            }
        case .failure(let error):
            if error.kind == .rateLimited { for (limiter, _) in tickets { limiter.throttle(after: error) } }
        }
        return (result, waited)
    }

    private func cancelled(_ callIndex: Int, _ provider: any GenerationCapability) -> APIError {
        APIError(.cancelled, "call \(callIndex) was cancelled", provider: provider.providerName)
    }

    /// One attempt, bounded by `callTimeout`; every error comes back as an `APIError`.
    private func attempt(_ request: GenerationRequest, callIndex: Int, provider: any GenerationCapability) async -> Result<GenerationResponse, APIError> {
        let context = "call \(callIndex) (\(request.model))"
        /// An adapter names the call's fields relative to it (`config.provider_options.stream`); here they get the call's path.
        @Sendable func located(_ error: APIError) -> APIError {
            guard let path = error.path, !path.hasPrefix("plan.") else { return error }
            var error = error
            error.path = "plan.calls[\(callIndex)].\(path)"
            return error
        }
        guard let callTimeout else {
            do {
                return .success(try await provider.generate(request))
            } catch {
                return .failure(located(APIError(wrapping: error, provider: provider.providerName, context: context)))
            }
        }
        switch await deadlines.race(callTimeout, { () async -> Result<GenerationResponse, APIError> in
            do {
                return .success(try await provider.generate(request))
            } catch {
                return .failure(located(APIError(wrapping: error, provider: provider.providerName, context: context)))
            }
        }) {
        case .finished(let result):
            return result
        case .expired(.success(let response)):
            return .success(response)
        case .expired(.failure(let error)) where error.kind != .cancelled:
            // The provider answered with its own error as the deadline passed: that error is the truth.
            return .failure(error)
        case .expired(.failure):
            return .failure(APIError(
                .timeout, "\(context) timed out after \(callTimeout.formattedSeconds) (per-call timeout)",
                provider: provider.providerName, retryable: true))
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
