import Synchronization

/// Spreads the calls of logical models over their deployments (`Design/routing.md`).
///
/// For each attempt: a deployment whose breaker's cooldown is over is probed first (one call);
/// otherwise, among the deployments that are closed, not held by their provider's headers and
/// under their `max_concurrency`, those not just failed, then the least loaded (in flight ÷
/// `max_concurrency`, in eighths), are chosen between by weight; one whose own limiter
/// (rpm/tpm) cannot grant at once is passed over while another can. When none can take the
/// call it waits (the clock; the command's deadline ends the wait) for the first to come back.
/// A deployment whose attempt failed is passed over for the next picks (one, plus one per call
/// it still has in flight) while another can take the call: the retry goes to another healthy
/// deployment when there is one.
///
/// All state is under one lock, taken twice per attempt (choose, finish): the decision is a
/// scan of the model's few deployments.
package final class Router: Sendable {
    public let configuration: RouterConfiguration
    public let clock: any PipelineClock
    /// Every deployment, in `configuration.deployments` order; indices below are into it.
    public let deployments: [Deployment]
    let adapters: [any GenerationCapability]
    let limiters: [RateLimiter]
    private let groups: [String: Group]
    /// The same, as a list: a run names a few logical models, and comparing the call's model
    /// with each (a small string compares as two words) costs less than hashing it per call.
    private let groupList: [(model: String, group: Group)]
    private let state: Mutex<State>
    /// How often a call waiting for a full deployment or a probe's answer looks again.
    static let pollInterval = Duration.milliseconds(2)

    struct Group: Sendable {
        let indices: [Int]
        let countsTokens: Bool
    }

    struct Slot {
        var inFlight = 0
        var breaker: CircuitBreaker
        /// Held by its provider's headers (remaining budget spent, Retry-After) until then.
        var notBefore = Duration.zero
        /// Picks to pass this deployment over after a failure.
        var avoid = 0
        var calls = 0
        var succeeded = 0
        var failures: [String: Int] = [:]
        var timeOpen = Duration.zero
        var latency = LatencyHistogram()
    }

    struct State {
        var slots: [Slot]
        var random: SplitMix64
    }

    /// - Parameters:
    ///   - adapters: the provider of each deployment, by deployment name.
    ///   - relays: by deployment name, the relay its adapter reports answers' headers to
    ///     (`ProviderOptions.responseHeaders`): the deployment learns its limits from them.
    ///   - seed: makes the weighted choice repeatable (tests); nil: seeded from the system.
    public init(
        configuration: RouterConfiguration, adapters: [String: any GenerationCapability], relays: [String: ResponseHeadersRelay] = [:],
        clock: any PipelineClock = SystemClock(), seed: UInt64? = nil
    ) throws(ConfigurationError) {
        if let problem = configuration.problem { throw ConfigurationError(field: "router.\(problem.path)", message: problem.message) }
        self.configuration = configuration
        self.clock = clock
        deployments = configuration.deployments
        var list: [any GenerationCapability] = []
        for d in deployments {
            guard let adapter = adapters[d.name] else { throw ConfigurationError(field: "router", message: "no provider given for deployment '\(d.name)'") }
            list.append(adapter)
        }
        self.adapters = list
        limiters = deployments.map { RateLimiter(requestsPerMinute: $0.requestsPerMinute, tokensPerMinute: $0.tokensPerMinute, clock: clock) }
        var groups: [String: Group] = [:]
        var index = 0
        for model in configuration.models.keys.sorted() {
            let count = configuration.models[model]!.count
            let indices = Array(index..<index + count)
            groups[model] = Group(indices: indices, countsTokens: indices.contains { configuration.deployments[$0].tokensPerMinute != nil })
            index += count
        }
        self.groups = groups
        groupList = groups.count <= 8 ? groups.sorted { $0.key < $1.key }.map { (model: $0.key, group: $0.value) } : []
        let breaker = CircuitBreaker(settings: configuration.breaker)
        state = Mutex(State(slots: Array(repeating: Slot(breaker: breaker), count: deployments.count), random: SplitMix64(seed: seed ?? UInt64.random(in: 0...UInt64.max))))
        for (index, d) in deployments.enumerated() {
            relays[d.name]?.connect { [weak self] headers in self?.learn(index, headers: headers) }
        }
    }

    /// Whether `model` is one of the router's logical models.
    public func routes(_ model: String) -> Bool { group(for: model) != nil }

    func group(for model: String) -> Group? {
        if groupList.isEmpty { return groups[model] }
        for entry in groupList where entry.model == model { return entry.group }
        return nil
    }

    // MARK: choosing

    /// A deployment taken for one attempt: give it back with `finish`.
    struct Pick: Sendable {
        let index: Int
        let probe: Bool
        let ticket: RateLimiter.Ticket?
        /// The clock's time when it was taken: the decision's own reading (the attempt's start,
        /// for its latency), so a decision reads the clock once.
        let start: Duration
    }

    enum Decision {
        case go(Pick)
        /// Every candidate's limiter is busy: wait for this one's.
        case limited(Int, probe: Bool)
        case wait(until: Duration)
    }

    /// Takes a deployment of `group` for one attempt, waiting while none can take it. `willWait`
    /// hears each wait before it starts, with its planned length (a poll, while a probe is out or
    /// every deployment is full, is `pollInterval`), so a wait is known while it lasts.
    /// Throws `CancellationError` when the task is cancelled (the command's deadline).
    func acquire(_ group: Group, tokens: Int, willWait: (Duration) -> Void = { _ in }) async throws -> Pick {
        while true {
            try Task.checkCancellation()
            let now = clock.now
            let decision = state.withLock { decide(group, tokens: tokens, now: now, state: &$0) }
            switch decision {
            case .go(let pick):
                return pick
            case .limited(let index, let probe):
                do {
                    let ticket = try await limiters[index].acquire(tokens: tokens, willWait: willWait)
                    return Pick(index: index, probe: probe, ticket: ticket, start: clock.now)
                } catch {
                    release(Pick(index: index, probe: probe, ticket: nil, start: now))
                    throw error
                }
            case .wait(let until):
                let deadline = max(until, now + .nanoseconds(1))
                willWait(deadline - now)
                try await clock.sleep(until: deadline)
            }
        }
    }

    private func decide(_ group: Group, tokens: Int, now: Duration, state: inout State) -> Decision {
        // The candidates on the stack: no allocation per decision.
        withUnsafeTemporaryAllocation(of: Int.self, capacity: group.indices.count) { candidates in
            var count = 0
            var until = Duration.seconds(Int64.max / 4)
            for i in group.indices {
                // Read in place: a copy of the slot would retain its stats' storage.
                let notBefore = state.slots[i].notBefore
                if notBefore > now {
                    until = min(until, notBefore)
                    continue
                }
                if let cap = deployments[i].maxConcurrency, state.slots[i].inFlight >= cap {
                    until = min(until, now + Self.pollInterval)
                    continue
                }
                switch state.slots[i].breaker.admission(now: now) {
                case .closed:
                    candidates[count] = i
                    count += 1
                case .probe:
                    // The cooldown is over: this call is the one probe.
                    state.slots[i].breaker.startProbe()
                    take(i, state: &state)
                    if limiters[i].isIdle { return .go(Pick(index: i, probe: true, ticket: nil, start: now)) }
                    guard let ticket = limiters[i].tryAcquire(tokens: tokens) else { return .limited(i, probe: true) }
                    return .go(Pick(index: i, probe: true, ticket: ticket, start: now))
                case .refused(let end):
                    until = min(until, end ?? now + Self.pollInterval)
                }
            }
            guard count > 0 else { return .wait(until: until) }
            var first = -1
            while count > 0 {
                let at = choose(among: candidates, count: count, state: &state)
                let chosen = candidates[at]
                if first < 0 { first = chosen }
                // A limiter without limits that never saw a 429 grants everything: no lock to take.
                if limiters[chosen].isIdle {
                    take(chosen, state: &state)
                    return .go(Pick(index: chosen, probe: false, ticket: nil, start: now))
                }
                if let ticket = limiters[chosen].tryAcquire(tokens: tokens) {
                    take(chosen, state: &state)
                    return .go(Pick(index: chosen, probe: false, ticket: ticket, start: now))
                }
                // Out of the list, the others kept in order.
                count -= 1
                for k in at..<count { candidates[k] = candidates[k + 1] }
            }
            take(first, state: &state)
            return .limited(first, probe: false)
        }
    }

    private func take(_ i: Int, state: inout State) {
        state.slots[i].inFlight += 1
        state.slots[i].calls = state.slots[i].calls.addingSaturating(1)
    }

    /// By weight among the candidates not just failed, then the least loaded: the position in
    /// `candidates` of the one chosen.
    private func choose(among candidates: UnsafeMutableBufferPointer<Int>, count: Int, state: inout State) -> Int {
        // Passed over after a failure first, then the load in eighths of capacity: one number.
        func rank(_ i: Int) -> Int {
            let inFlight = state.slots[i].inFlight
            let load = deployments[i].maxConcurrency.map { inFlight.multipliedSaturating(by: 8) / $0 } ?? 0
            return (state.slots[i].avoid > 0 ? 1 << 32 : 0) + min(load, 1 << 20)
        }
        if count == 1 { return 0 }
        var best = Int.max, total = 0
        for k in 0..<count {
            let r = rank(candidates[k])
            if r < best {
                best = r
                total = deployments[candidates[k]].weight
            } else if r == best {
                total += deployments[candidates[k]].weight
            }
        }
        var r = Int(state.random.next() % UInt64(max(1, total)))
        var chosen = 0
        for k in 0..<count where rank(candidates[k]) == best {
            r -= deployments[candidates[k]].weight
            if r < 0 {
                chosen = k
                break
            }
        }
        for k in 0..<count where k != chosen && state.slots[candidates[k]].avoid > 0 { state.slots[candidates[k]].avoid -= 1 }
        return chosen
    }

    // MARK: outcomes

    /// What changed in a deployment's breaker because of one attempt (for the command's events).
    enum Change {
        case opened(cooldown: Duration)
        case closed(openFor: Duration)
    }

    /// Gives a deployment back after its attempt (sent when it was picked); the breaker, the
    /// limiter and the stats learn from `result`.
    func finish(_ pick: Pick, result: Result<GenerationResponse, APIError>) -> Change? {
        let i = pick.index
        let limiter = limiters[i]
        switch result {
        case .success(let response):
            if let ticket = pick.ticket, response.usage.isReported { limiter.settle(ticket, actualTokens: response.usage.totalTokens) }
            if !limiter.isIdle { limiter.recordSuccess() }
        case .failure(let error) where error.kind == .rateLimited:
            limiter.throttle(after: error)
        case .failure:
            break
        }
        let now = clock.now
        let latency = now - pick.start
        var cancelled = false
        if case .failure = result { cancelled = Task.isCancelled }
        return state.withLock { state -> Change? in
            state.slots[i].inFlight -= 1
            switch result {
            case .success:
                state.slots[i].succeeded = state.slots[i].succeeded.addingSaturating(1)
                state.slots[i].latency.record(latency)
                return closed(i, now: now, state: &state)
            case .failure(let error):
                state.slots[i].failures[error.code.map { "\(error.kind.rawValue):\($0)" } ?? error.kind.rawValue, default: 0] += 1
                // A cancelled task (the command's deadline, a caller that stopped) says nothing
                // about the deployment, whatever its adapter made of the cancel.
                if error.kind == .cancelled || cancelled {
                    if pick.probe { state.slots[i].breaker.abandonProbe() }
                    return nil
                }
                if error.retryable || error.kind == .timeout { state.slots[i].avoid = 1 + state.slots[i].inFlight }
                guard CircuitBreaker.isUnhealthy(error) else { return closed(i, now: now, state: &state) }
                return state.slots[i].breaker.failed(now: now).map { .opened(cooldown: $0) }
            }
        }
    }

    private func closed(_ i: Int, now: Duration, state: inout State) -> Change? {
        guard let open = state.slots[i].breaker.succeeded(now: now) else { return nil }
        state.slots[i].timeOpen += open
        return .closed(openFor: open)
    }

    /// Gives back a deployment taken for an attempt that was never sent.
    func release(_ pick: Pick) {
        state.withLock { state in
            state.slots[pick.index].inFlight -= 1
            state.slots[pick.index].calls -= 1
            if pick.probe { state.slots[pick.index].breaker.abandonProbe() }
        }
    }

    /// Learns deployment `index`'s limits from the headers of an answer it sent.
    func learn(_ index: Int, headers: [String: String]) {
        guard let limits = HeaderLimits.parse(headers) else { return }
        let now = clock.now
        state.withLock { state in
            guard let hold = limits.hold(othersInFlight: max(0, state.slots[index].inFlight - 1)) else { return }
            state.slots[index].notBefore = max(state.slots[index].notBefore, now + hold)
        }
    }

    /// Whether `group` has a deployment other than `index` that is not open.
    func hasAlternative(to index: Int, in group: Group) -> Bool {
        let now = clock.now
        return state.withLock { state in
            group.indices.contains { i in
                guard i != index else { return false }
                if case .refused = state.slots[i].breaker.admission(now: now) { return false }
                return true
            }
        }
    }

    // MARK: stats

    /// One deployment's figures for `--stats`.
    package struct DeploymentStats: Sendable, Hashable {
        public var name: String
        /// The logical model it serves.
        public var model: String
        public var provider: String
        public var providerModel: String
        /// Attempts sent to it.
        public var calls: Int
        public var succeeded: Int
        /// Failed attempts by kind (`provider_error:connection_failed`, `timeout`, …).
        public var failures: [String: Int]
        public var openings: Int
        public var timeOpen: Duration
        /// `closed`, `open` or `half_open`.
        public var state: String
        public var latency: LatencyHistogram
        /// The most requests its limiter granted in any minute.
        public var peakRequestsPerMinute: Int
    }

    public func stats() -> [DeploymentStats] {
        let now = clock.now
        let slots = state.withLock { $0.slots }
        var result: [DeploymentStats] = []
        for model in configuration.models.keys.sorted() {
            for i in groups[model]!.indices {
                let slot = slots[i], d = deployments[i]
                let stateName: String
                switch slot.breaker.state {
                case .closed: stateName = "closed"
                case .open: stateName = "open"
                case .halfOpen: stateName = "half_open"
                }
                result.append(
                    DeploymentStats(
                        name: d.name, model: model, provider: d.provider, providerModel: d.model, calls: slot.calls, succeeded: slot.succeeded,
                        failures: slot.failures, openings: slot.breaker.openings, timeOpen: slot.timeOpen + slot.breaker.openFor(now: now),
                        state: stateName, latency: slot.latency, peakRequestsPerMinute: limiters[i].peakRequestsPerMinute))
            }
        }
        return result
    }
}
