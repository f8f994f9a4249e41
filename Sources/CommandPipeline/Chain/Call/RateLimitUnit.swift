/// Holds each attempt until the rate limiters grant it: the engine's (`--rate-limit-rpm/tpm`,
/// and the pause after a provider's 429) and the plan's own `rate_constraint`. A grant is
/// settled with the real usage; a 429 pauses the limiters. Each wait is recorded (a `waiting`
/// event with its length) **before** it starts, so it is seen while the attempt it delays is
/// held, and the command's `BackoffScope.lender` hears when a command starts and stops waiting
/// (the CLI's progress line counts them).
///
/// When there is nothing to decide — no plan limit, and an engine limiter without limits that
/// has seen no 429 (`isIdle`) — the unit does not apply and costs the call nothing. The retry
/// layer, which sees every failure, pauses the engine's limiter on a 429 (`Retrier.pausing`);
/// from then on the unit applies.
package struct RateLimitUnit: ChainUnit {
    /// Shared by every command of the engine.
    public let limiter: RateLimiter?
    let clock: any PipelineClock

    public init(limiter: RateLimiter?, clock: any PipelineClock) {
        self.limiter = limiter
        self.clock = clock
    }

    public func applies(to input: CallInput) -> Bool { input.planLimiter != nil || !(limiter?.isIdle ?? true) }

    @inline(__always)
    public func handle(_ input: CallInput, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        var limiters: [RateLimiter] = []
        if let plan = input.planLimiter { limiters.append(plan) }
        if let limiter { limiters.append(limiter) }
        if limiters.isEmpty { return await next(input) }
        let tokens = limiters.contains { $0.tokensPerMinute != nil } ? input.state.estimatedTokens(call: input.callIndex) : 0
        var tickets: [(RateLimiter, RateLimiter.Ticket)] = []
        let lender = BackoffScope.lender
        var waiting = false
        defer { if waiting { lender?.rateLimitWaitEnded() } }
        for limiter in limiters {
            // Time is only counted when the limiter really makes the call wait.
            if let ticket = limiter.tryAcquire(tokens: tokens) {
                tickets.append((limiter, ticket))
                continue
            }
            do {
                let ticket = try await limiter.acquire(tokens: tokens) { wait in
                    input.log.record(.waiting(call: input.callIndex, reason: PipelineEvent.WaitReason.rateLimit.rawValue, duration: wait))
                    if !waiting {
                        waiting = true
                        lender?.rateLimitWaitStarted()
                    }
                }
                tickets.append((limiter, ticket))
            } catch {
                return .failure(input.cancelled())
            }
        }
        if waiting {
            waiting = false
            lender?.rateLimitWaitEnded()
        }
        let result = await next(input)
        switch result {
        case .success(let response):
            for (limiter, ticket) in tickets {
                // Usage not reported: the grant keeps its estimate (0 would undercount the minute).
                if response.usage.isReported { limiter.settle(ticket, actualTokens: response.usage.totalTokens) }
                limiter.recordSuccess()
            }
        case .failure(let error):
            if error.kind == .rateLimited { for (limiter, _) in tickets { limiter.throttle(after: error) } }
        }
        return result
    }
}
