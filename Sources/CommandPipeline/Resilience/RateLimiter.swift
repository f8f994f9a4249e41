import Synchronization

/// Requests and tokens per minute over a sliding 60-second window: in no window of 60
/// seconds are more than `requestsPerMinute` requests (or `tokensPerMinute` tokens)
/// granted. Shared by every call it guards; waiting is on the injected clock.
///
/// With neither limit set it grants at once, recording nothing, and only pauses after a 429.
///
/// Adaptive: `throttle(after:)` on a provider 429 pauses all grants until the provider's
/// `Retry-After` (capped at `maxPause`, like every retry hint) or a growing backoff has
/// passed, and halves the request budget, which recovers step by step as calls succeed.
/// The 429s of calls that were already in flight belong to the same episode: they extend
/// nothing and halve nothing again. After the pause, until a call succeeds, grants are let
/// through one per `probeSpacing`, so waiting calls do not all retry at once.
package final class RateLimiter: Sendable {
    public let requestsPerMinute: Int?
    public let tokensPerMinute: Int?
    /// The longest pause one 429 can cause, whatever the provider's `Retry-After` says.
    public let maxPause: Duration
    /// After a 429 and until a success, one grant per this interval.
    public let probeSpacing: Duration
    private let clock: any PipelineClock
    private static let window = Duration.seconds(60)

    private struct Grant {
        var id: Int
        var at: Duration
        var tokens: Int
    }

    private struct State {
        var grants: [Grant] = []     // in time order
        var head = 0                 // grants before head are outside the window
        var nextID = 0
        var pausedUntil: Duration = .zero
        var consecutive429 = 0
        var nextProbe: Duration?     // set from a 429 until a success: when the next grant may go
        var budgetFactor = 1.0       // adaptive share of requestsPerMinute
        var peakRequests = 0         // most grants in any 60 s window so far

        mutating func expire(before cutoff: Duration) {
            while head < grants.count && grants[head].at <= cutoff { head += 1 }
            if head > 1024 && head * 2 > grants.count {
                grants.removeFirst(head)
                head = 0
            }
        }

        var live: ArraySlice<Grant> { grants[head...] }
    }

    private let state = Mutex(State())
    /// Set by the first 429 and never cleared: until then a limiter without limits has nothing
    /// to check or record (`isIdle`), which spares every call a lock and a clock reading.
    private let everThrottled = Atomic<Bool>(false)

    /// Whether a grant needs no decision: neither limit is set and no 429 was ever seen.
    public var isIdle: Bool {
        requestsPerMinute == nil && tokensPerMinute == nil && !everThrottled.load(ordering: .acquiring)
    }

    public init(
        requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, maxPause: Duration = .seconds(60),
        probeSpacing: Duration = .milliseconds(250), clock: any PipelineClock = SystemClock()
    ) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.maxPause = max(.zero, maxPause)
        self.probeSpacing = max(.zero, probeSpacing)
        self.clock = clock
    }

    /// A ticket for one granted request; `settle` corrects its tokens with actual usage.
    package struct Ticket: Sendable, Hashable {
        let id: Int
    }

    private enum Decision {
        case granted(Ticket)
        case wait(until: Duration)
    }

    /// Waits until one request of `tokens` estimated tokens fits, then takes it. `willWait`
    /// hears each wait before it starts, with its length, so a wait is known (recorded, counted)
    /// while it lasts, not only once it is over.
    public func acquire(tokens: Int, willWait: (Duration) -> Void = { _ in }) async throws -> Ticket {
        while true {
            let now = clock.now
            switch decide(tokens: tokens, now: now) {
            case .granted(let ticket): return ticket
            case .wait(let until):
                let deadline = max(until, now + .nanoseconds(1))
                willWait(deadline - now)
                try await clock.sleep(until: deadline)
            }
        }
    }

    /// Takes one request of `tokens` if it fits now; `nil` if it would have to wait.
    public func tryAcquire(tokens: Int) -> Ticket? {
        if case .granted(let ticket) = decide(tokens: tokens, now: clock.now) { return ticket }
        return nil
    }

    private func decide(tokens: Int, now: Duration) -> Decision {
        state.withLock { s in
            if now < s.pausedUntil { return .wait(until: s.pausedUntil) }
            if let probe = s.nextProbe {
                if now < probe { return .wait(until: probe) }
            }
            // Without limits the limiter only pauses after a 429: nothing to record.
            if requestsPerMinute == nil && tokensPerMinute == nil {
                if s.nextProbe != nil { s.nextProbe = now + probeSpacing }
                return .granted(Ticket(id: 0))
            }
            s.expire(before: now - Self.window)
            let live = s.live
            if let rpm = requestsPerMinute {
                let budget = max(1, Int((Double(rpm) * s.budgetFactor).rounded(.down)))
                if live.count >= budget {
                    // The oldest grant that must leave the window before one more fits.
                    return .wait(until: live[live.startIndex + (live.count - budget)].at + Self.window)
                }
            }
            if let tpm = tokensPerMinute, !live.isEmpty {
                var used = live.saturatingSum(\.tokens)
                if used.addingSaturating(tokens) > tpm {
                    for grant in live {
                        used -= grant.tokens
                        if used.addingSaturating(tokens) <= tpm { return .wait(until: grant.at + Self.window) }
                    }
                    return .wait(until: live.last!.at + Self.window)
                }
            }
            if s.nextProbe != nil { s.nextProbe = now + probeSpacing }
            s.nextID += 1
            s.grants.append(Grant(id: s.nextID, at: now, tokens: tokens))
            s.peakRequests = max(s.peakRequests, s.grants.count - s.head)
            return .granted(Ticket(id: s.nextID))
        }
    }

    /// The most requests granted within any 60-second window so far: proof that the limit held.
    public var peakRequestsPerMinute: Int { state.withLock { $0.peakRequests } }

    /// Replaces a grant's estimated tokens with what the call really used.
    public func settle(_ ticket: Ticket, actualTokens: Int) {
        guard tokensPerMinute != nil else { return }
        state.withLock { s in
            if let index = s.live.firstIndex(where: { $0.id == ticket.id }) { s.grants[index].tokens = actualTokens }
        }
    }

    /// The provider said 429: pause every grant and shrink the request budget.
    public func throttle(after error: APIError) {
        let now = clock.now
        everThrottled.store(true, ordering: .releasing)
        state.withLock { s in
            // A 429 of a call sent before the pause began is part of the same episode.
            if now < s.pausedUntil { return }
            s.consecutive429 += 1
            let backoff = min(error.retryAfter ?? .seconds(min(30, 1 << min(s.consecutive429 - 1, 5))), maxPause)
            s.pausedUntil = now + max(backoff, .zero)
            s.nextProbe = s.pausedUntil
            s.budgetFactor = max(0.1, s.budgetFactor / 2)
        }
    }

    /// A call succeeded: the adaptive budget recovers a little.
    public func recordSuccess() {
        state.withLock { s in
            s.consecutive429 = 0
            s.nextProbe = nil
            if s.budgetFactor < 1 { s.budgetFactor = min(1, s.budgetFactor * 1.1) }
        }
    }
}
