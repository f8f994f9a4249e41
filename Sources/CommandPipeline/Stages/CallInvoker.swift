/// Sends one call to the provider: through the rate limiters, with a per-call timeout,
/// retrying retryable errors by the `RetryPolicy`, and once more without the cache when a
/// cached call failed. This is the one place a provider's `generate` is called, so it is
/// the engine's one retry layer (adapters never retry on their own).
public struct CallInvoker: Sendable {
    public struct Outcome: Sendable {
        public var result: Result<GenerationResponse, APIError>
        public var telemetry: CallTelemetry
    }

    public var policy: RetryPolicy
    /// Each attempt that takes longer fails with a retryable `timeout`.
    public var callTimeout: Duration?
    public var clock: any PipelineClock
    /// Shared by every command of the engine (`--rate-limit-rpm/tpm`).
    public var limiter: RateLimiter?
    private let deadlines: DeadlineScheduler

    public init(policy: RetryPolicy = RetryPolicy(), callTimeout: Duration? = nil, clock: any PipelineClock = SystemClock(), limiter: RateLimiter? = nil) {
        self.policy = policy
        self.callTimeout = callTimeout
        self.clock = clock
        self.limiter = limiter
        self.deadlines = DeadlineScheduler(clock: clock)
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
        var telemetry = CallTelemetry(callIndex: callIndex, attempts: 0)
        var current = request
        let limiters = [planLimiter, limiter].compactMap { $0 }
        let tokens = limiters.contains { $0.tokensPerMinute != nil } ? estimatedTokens() : 0
        var retriesLeft = policy.maxAttempts - 1
        while true {
            telemetry.attempts += 1
            var tickets: [(RateLimiter, RateLimiter.Ticket)] = []
            do {
                for limiter in limiters { tickets.append((limiter, try await limiter.acquire(tokens: tokens))) }
            } catch {
                return Outcome(result: .failure(cancelled(callIndex, provider)), telemetry: telemetry)
            }
            let result = await attempt(current, callIndex: callIndex, provider: provider)
            switch result {
            case .success(let response):
                for (limiter, ticket) in tickets {
                    limiter.settle(ticket, actualTokens: response.usage.totalTokens)
                    limiter.recordSuccess()
                }
                return Outcome(result: result, telemetry: telemetry)
            case .failure(let error):
                if error.kind == .cancelled || Task.isCancelled {
                    return Outcome(result: .failure(error.kind == .cancelled ? error : cancelled(callIndex, provider)), telemetry: telemetry)
                }
                if error.kind == .rateLimited { for limiter in limiters { limiter.throttle(after: error) } }
                if error.retryable && retriesLeft > 0 {
                    retriesLeft -= 1
                    let delay = policy.delay(after: telemetry.attempts, error: error, random: policy.jitter > 0 ? Double.random(in: 0..<1) : 0)
                    do {
                        try await clock.sleep(for: delay)
                    } catch {
                        return Outcome(result: .failure(cancelled(callIndex, provider)), telemetry: telemetry)
                    }
                    telemetry.retryWait += delay
                    continue
                }
                if let uncached, current.cache != nil, !telemetry.cacheBypassed {
                    // A cached call that failed is tried once more with the shared parts themselves.
                    telemetry.cacheBypassed = true
                    current = uncached
                    continue
                }
                return Outcome(result: .failure(error), telemetry: telemetry)
            }
        }
    }

    private func cancelled(_ callIndex: Int, _ provider: any GenerationCapability) -> APIError {
        APIError(.cancelled, "call \(callIndex) was cancelled", provider: provider.providerName)
    }

    /// One attempt, bounded by `callTimeout`; every error comes back as an `APIError`.
    private func attempt(_ request: GenerationRequest, callIndex: Int, provider: any GenerationCapability) async -> Result<GenerationResponse, APIError> {
        let context = "call \(callIndex) (\(request.model))"
        guard let callTimeout else {
            do {
                return .success(try await provider.generate(request))
            } catch {
                return .failure(APIError(wrapping: error, provider: provider.providerName, context: context))
            }
        }
        switch await deadlines.race(callTimeout, { () async -> Result<GenerationResponse, APIError> in
            do {
                return .success(try await provider.generate(request))
            } catch {
                return .failure(APIError(wrapping: error, provider: provider.providerName, context: context))
            }
        }) {
        case .finished(let result):
            return result
        case .expired(.success(let response)):
            return .success(response)
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
