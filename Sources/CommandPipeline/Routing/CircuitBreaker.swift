/// One deployment's circuit breaker, a value kept under its router's lock.
///
///     closed ──N consecutive unhealthy failures──▶ open (cooldown) ──cooldown over──▶ half-open
///        ▲                                                                              │ one probe
///        └──────────────────────── probe answered ◀─────────────────────────────────────┘
///                                  probe failed unhealthy: open again, cooldown doubled (capped)
///
/// Unhealthy: connection failures, 5xx, timeouts (`isUnhealthy`). Any other answer — a 400, a
/// refused command, a 429 (which the deployment's limiter handles) — shows the deployment
/// alive: it ends a failure streak. A failure arriving while open (a call that was in flight
/// when it opened) never moves the end of the cooldown: a running cooldown is never shortened.
package struct CircuitBreaker: Sendable, Hashable {
    package enum State: Sendable, Hashable {
        case closed
        case open(until: Duration)
        /// The cooldown is over; `probing` while the one probe is in flight.
        case halfOpen(probing: Bool)
    }

    public let settings: BreakerSettings
    public private(set) var state: State = .closed
    /// Consecutive unhealthy failures while closed.
    public private(set) var failures = 0
    /// The length of the next opening.
    public private(set) var nextCooldown: Duration
    public private(set) var openings = 0
    /// When the current opening began (for time open).
    private var openedAt: Duration?

    public init(settings: BreakerSettings) {
        self.settings = settings
        nextCooldown = settings.cooldown
    }

    /// Failures that say the deployment is unwell, not that the request was wrong.
    public static func isUnhealthy(_ error: APIError) -> Bool {
        switch error.kind {
        case .timeout: true
        case .providerError: error.retryable
        default: false
        }
    }

    package enum Admission: Sendable, Hashable {
        case closed
        /// This call is the half-open probe.
        case probe
        /// Nothing may go before `until` (nil: a probe is in flight; wait for its answer).
        case refused(until: Duration?)
    }

    /// Whether a call may go now (without taking it).
    public func admission(now: Duration) -> Admission {
        switch state {
        case .closed: .closed
        case .open(let until): now >= until ? .probe : .refused(until: until)
        case .halfOpen(let probing): probing ? .refused(until: nil) : .probe
        }
    }

    /// A call is sent as the probe.
    public mutating func startProbe() { state = .halfOpen(probing: true) }

    /// A probe ended without an answer either way (cancelled): let the next call probe.
    public mutating func abandonProbe() { if case .halfOpen = state { state = .halfOpen(probing: false) } }

    /// A call answered (or failed in a way that shows the deployment alive). Returns the time
    /// the breaker was open when this closes it.
    public mutating func succeeded(now: Duration) -> Duration? {
        failures = 0
        guard case .halfOpen = state else { return nil }
        state = .closed
        nextCooldown = settings.cooldown
        defer { openedAt = nil }
        return openedAt.map { now - $0 }
    }

    /// A call failed unhealthy. Returns the cooldown when this opens the breaker.
    public mutating func failed(now: Duration) -> Duration? {
        switch state {
        case .open:
            return nil  // in flight when it opened: the running cooldown stands
        case .halfOpen:
            return open(now: now)
        case .closed:
            failures = failures.addingSaturating(1)
            return failures >= settings.failureThreshold ? open(now: now) : nil
        }
    }

    private mutating func open(now: Duration) -> Duration {
        let cooldown = nextCooldown
        state = .open(until: now + cooldown)
        if openedAt == nil { openedAt = now }
        openings = openings.addingSaturating(1)
        failures = 0
        nextCooldown = min(cooldown * 2, settings.maxCooldown)
        return cooldown
    }

    /// Time open so far in the current opening.
    public func openFor(now: Duration) -> Duration { openedAt.map { now - $0 } ?? .zero }
}
