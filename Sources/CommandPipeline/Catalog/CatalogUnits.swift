import Synchronization

/// Checks each command against the catalog before anything runs (`Preflight`): a failed check
/// ends the command with its error, no upload and no call made. A cache plan below the model's
/// minimum is dropped (the cache stage is skipped) with the reason in `telemetry.cache.uncached_reason`.
/// Models the catalog does not know run unchecked; `onUnknownModel` hears each such name once.
package struct PreflightUnit: ChainUnit {
    public let catalog: ModelCatalog
    /// When set, counts the tokens of calls whose estimate is near the context window.
    public let counting: (any TokenCountingCapability)?
    private let unknown: UnknownModels?

    public init(catalog: ModelCatalog, counting: (any TokenCountingCapability)? = nil, onUnknownModel: (@Sendable (String) -> Void)? = nil) {
        self.catalog = catalog
        self.counting = counting
        unknown = onUnknownModel.map(UnknownModels.init)
    }

    @inline(__always)
    public func handle(_ input: CommandRun, next: Next<CommandRun, CommandOutcome>) async -> CommandOutcome {
        let command = input.command
        // Every check is about a model the catalog knows: with none, there is nothing to check
        // (the common case of a model the catalog does not list costs two lookups, no more).
        var anyKnown = false
        func look(_ model: String) {
            if catalog.info(for: model) != nil { anyKnown = true } else { unknown?.report(model) }
        }
        for call in command.plan.calls { look(call.model) }
        if let fallback = command.plan.fallbackCall { look(fallback.model) }
        guard anyKnown else { return await next(input) }
        let problem: APIError?
        if let counting {
            problem = await Preflight.check(command, catalog: catalog, counting: counting)
        } else {
            problem = Preflight.check(command, catalog: catalog)
        }
        if let problem { return CommandOutcome(problem, state: input.state, log: input.log) }
        guard let reason = Preflight.uncachedReason(command, catalog: catalog), let request = input.state.cacheRequest else {
            return await next(input)
        }
        var run = input
        run.state = input.state.withoutCache()
        run.log.record(.cacheSkipped(CacheTelemetry(id: nil, key: request.key, created: false, reused: false, uncachedReason: reason)))
        return await next(run)
    }

    /// Names already reported, so each is said once per engine.
    private final class UnknownModels: Sendable {
        private let seen = Mutex<Set<String>>([])
        private let onUnknown: @Sendable (String) -> Void
        init(_ onUnknown: @escaping @Sendable (String) -> Void) { self.onUnknown = onUnknown }
        func report(_ model: String) {
            if seen.withLock({ $0.insert(model).inserted }) { onUnknown(model) }
        }
    }
}

/// Prices every request the engine sent on a command's behalf from the usage its answer
/// reported (`Cost`): each response (into its `cost`), the request that created the cache the
/// command created (Anthropic's warm-up, Gemini's `cachedContents.create`) and the cache's
/// storage for its time to live, and every failed attempt whose answer was billed. The sum is
/// `telemetry.cost`, its `parts` say which request each part came from, and the run's account
/// in `ledger` adds exactly that. With a limit on the ledger it is also the budget: a command
/// whose estimate (`Cost.estimate`, plus `Cost.cacheEstimate` for the first command asking for
/// a cache key) would take spent plus in-flight estimates past the limit is not started
/// (`budget_exceeded`), and from then on no command is.
package struct CostUnit: ChainUnit {
    public let catalog: ModelCatalog
    public let ledger: CostLedger?

    public init(catalog: ModelCatalog, ledger: CostLedger? = nil) {
        self.catalog = catalog
        self.ledger = ledger
    }

    @inline(__always)
    public func handle(_ input: CommandRun, next: Next<CommandRun, CommandOutcome>) async -> CommandOutcome {
        var estimate = 0.0
        var claimed: String?
        if let ledger, ledger.limit != nil {
            estimate = Cost.estimate(input.command, catalog: catalog)
            // The cache's creation and storage, reserved by the first command that may create it.
            if let key = input.state.cacheRequest?.key, ledger.claimCache(key) {
                estimate += Cost.cacheEstimate(input.command, catalog: catalog)
                claimed = key
            }
        }
        if let ledger, !ledger.reserve(estimate) {
            if let claimed { ledger.releaseCache(claimed) }
            let limit = ledger.limit ?? 0, held = ledger.heldForUnreported
            let error = APIError(
                .budgetExceeded,
                String(format: "not started: the run's budget of $%.2f (--max-cost) would be passed (spent $%.4f, in flight and this command estimated $%.4f",
                       limit, ledger.spent, ledger.reserved + estimate)
                    + (held > 0 ? String(format: ", held for commands whose usage the server did not report $%.4f)", held) : ")"))
            return CommandOutcome(error, state: input.state, log: input.log)
        }
        let outcome = Self.priced(await next(input), catalog: catalog)
        // A claimer that ended without creating the cache (it failed first, or was refused) hands
        // the claim on: the next command asking for the key may be the one that creates it.
        if let claimed, outcome.telemetry.cache?.created != true { ledger?.releaseCache(claimed) }
        if let ledger {
            // A cost with unreported calls: hold a count of what came back (never less than the estimate).
            var held = 0.0
            if let cost = outcome.telemetry.cost, cost.unreportedCalls > 0, ledger.limit != nil {
                let responses: [CallResponse]
                switch outcome.result {
                case .success(let finalized): responses = finalized.responses
                case .failure: responses = outcome.partialResponses
                }
                held = Cost.unreportedHeuristic(responses, command: input.command, catalog: catalog)
            }
            ledger.settle(reserved: estimate, cost: outcome.telemetry.cost, held: held)
        }
        return outcome
    }

    /// `outcome` with the cost of each response and of the command in its telemetry; `batch`
    /// prices the responses as a batch service's answers (each model's `batchDiscount` off every
    /// token price). The cache a command created is priced at the ordinary prices (it was an
    /// ordinary request); billed attempts at the batch prices (in a batch, the only ones are
    /// batch answers rejected for breaking their `response_format`).
    public static func priced(_ outcome: CommandOutcome, catalog: ModelCatalog, batch: Bool = false) -> CommandOutcome {
        let responses: [CallResponse]
        switch outcome.result {
        case .success(let finalized): responses = finalized.responses
        case .failure: responses = outcome.partialResponses
        }
        let extra = others(outcome.telemetry, catalog: catalog, batch: batch)
        // Nothing priced (the model is not in the catalog, or has no prices): nothing to copy.
        guard extra != nil || responses.contains(where: { catalog.info(for: $0.model)?.prices != nil }) else { return outcome }
        func price(_ responses: [CallResponse]) -> [CallResponse] {
            responses.map { response in
                var priced = response
                priced.cost = Cost.of(response, catalog: catalog, batch: batch)
                return priced
            }
        }
        func total(_ responses: [CallResponse]) -> Cost? {
            var cost = Cost.of(responses, catalog: catalog, batch: batch)
            if cost != nil {
                cost!.parts = responses.compactMap { r in
                    r.cost.map { CostPart(request: .call, model: r.model, callIndex: r.callIndex, usd: $0.totalUSD) }
                }
            }
            guard let extra else { return cost }
            let unpriced = cost?.unpricedCalls ?? responses.count
            var sum = (cost ?? .zero) + extra
            sum.unpricedCalls = unpriced
            sum.unreportedCalls = cost?.unreportedCalls ?? 0
            return sum
        }
        switch outcome.result {
        case .success(var finalized):
            finalized.responses = price(finalized.responses)
            finalized.telemetry.cost = total(finalized.responses)
            return CommandOutcome(finalized, state: outcome.state)
        case .failure(let error):
            let partial = price(outcome.partialResponses)
            var telemetry = outcome.telemetry
            telemetry.cost = total(partial)
            return CommandOutcome(
                result: .failure(error), state: outcome.state, telemetry: telemetry, partialResponses: partial, failedCalls: outcome.failedCalls)
        }
    }

    /// What the command paid for besides its responses: the cache it created (the creating
    /// request, and the storage for the time to live) and its billed failed attempts; nil when
    /// none of it is priced. A request whose server reported no usage is counted in
    /// `unreportedCalls` (the total is then a lower bound, and the budget holds the estimate),
    /// never priced as zero.
    package static func others(_ telemetry: Telemetry, catalog: ModelCatalog, batch: Bool = false) -> Cost? {
        var total: Cost?
        func add(_ cost: Cost, _ part: CostPart) {
            var cost = cost
            cost.parts = [part]
            total = (total ?? .zero) + cost
        }
        func unreported() {
            var cost = total ?? .zero
            cost.unreportedCalls = cost.unreportedCalls.addingSaturating(1)
            total = cost
        }
        if let cache = telemetry.cache, cache.created, let id = cache.id, !id.isEmpty,
            let model = cache.model, let prices = catalog.info(for: model)?.prices
        {
            if let usage = cache.creationUsage, !usage.isReported {
                unreported()
            } else if let usage = cache.creationUsage {
                let cost = Cost.of(usage, prices: prices)
                add(cost, CostPart(request: cache.kind == "prefix" ? .cacheWarmUp : .cacheCreation, model: model, usd: cost.totalUSD))
            }
            if cache.kind == "stored", let tokens = cache.tokenCount, let seconds = cache.ttlSeconds {
                let cost = Cost.storage(tokens: tokens, seconds: seconds, prices: prices)
                if cost.totalUSD > 0 { add(cost, CostPart(request: .cacheStorage, model: model, usd: cost.totalUSD)) }
            }
        }
        if !telemetry.billedAttempts.isEmpty {
            for attempt in telemetry.billedAttempts {
                guard let prices = catalog.info(for: attempt.model)?.prices else { continue }
                guard attempt.usage.isReported else {
                    unreported()
                    continue
                }
                let cost = Cost.of(attempt.usage, prices: prices, batch: batch)
                add(cost, CostPart(request: .failedAttempt, model: attempt.model, callIndex: attempt.callIndex, attempt: attempt.attempt, usd: cost.totalUSD))
            }
        }
        return total
    }
}

/// The run's spending: what finished commands cost, what running ones are estimated to, and
/// (with a `limit`) the budget they are held to. Shared by every command of an engine.
public final class CostLedger: Sendable {
    /// US dollars; nil: only count.
    public let limit: Double?

    private struct State {
        var spent = 0.0
        var reserved = 0.0
        var refused = 0
        var exhausted = false
        var unpricedCommands = 0
        var pricedCommands = 0
        /// What finished commands whose cost is not known in full (a call's usage was not
        /// reported) are held to have cost: the larger of their estimate and a count of what came
        /// back, against the budget in place of what they really cost.
        var heldForUnreported = 0.0
        var unreportedCalls = 0
        /// Cache keys whose creation some command has reserved (`claimCache`).
        var cacheKeys: Set<String> = []
    }

    private let state = Mutex(State())

    public init(limit: Double? = nil) { self.limit = limit }

    /// Dollars spent by finished commands.
    public var spent: Double { state.withLock { $0.spent } }
    /// Estimates of commands still running.
    public var reserved: Double { state.withLock { max(0, $0.reserved) } }
    /// Commands not started because of the budget.
    public var refused: Int { state.withLock { $0.refused } }
    /// Whether the budget stopped the run from taking commands.
    public var exhausted: Bool { state.withLock { $0.exhausted } }
    /// Finished commands with a cost, and without one (no priced model answered).
    public var pricedCommands: Int { state.withLock { $0.pricedCommands } }
    public var unpricedCommands: Int { state.withLock { $0.unpricedCommands } }
    /// Calls on priced models whose provider did not report usage: `spent` leaves them out (it
    /// is then a lower bound) and the budget holds their commands' estimates instead.
    public var unreportedCalls: Int { state.withLock { $0.unreportedCalls } }
    /// What is held for those commands (`settle`): each the larger of its estimate and a count of what came back.
    public var heldForUnreported: Double { state.withLock { $0.heldForUnreported } }

    /// Takes `estimate` into the in-flight account, or refuses (and from then on refuses every
    /// command) when spent + in flight + `estimate` would pass the limit.
    public func reserve(_ estimate: Double) -> Bool {
        state.withLock { s in
            guard let limit else { return true }
            if !s.exhausted && s.spent + s.heldForUnreported + max(0, s.reserved) + estimate <= limit {
                s.reserved += estimate
                return true
            }
            s.exhausted = true
            s.refused += 1
            return false
        }
    }

    /// Whether the caller is the first to ask for cache `key`, the command that will create it
    /// (and so reserves its creation and storage): true once per key. Keys come from input, so
    /// at most `maxCacheKeys` are remembered; past that every new key reserves (the safe side:
    /// a reservation is released when its command ends).
    public func claimCache(_ key: String) -> Bool {
        state.withLock { s in
            if s.cacheKeys.contains(key) { return false }
            if s.cacheKeys.count < Self.maxCacheKeys { s.cacheKeys.insert(key) }
            return true
        }
    }

    /// Cache keys `claimCache` remembers.
    public static let maxCacheKeys = 100_000

    /// The command that claimed `key` ended without creating the cache: the next one to ask for
    /// it claims (and reserves) it again.
    public func releaseCache(_ key: String) {
        state.withLock { _ = $0.cacheKeys.remove(key) }
    }

    /// A command ended: its estimate leaves the in-flight account and its cost joins the spent
    /// one. A cost with unreported calls is a lower bound: the larger of the command's estimate
    /// and `held` (a count of what came back, `Cost.unreportedHeuristic`) stays held against the
    /// budget as well, so a server that never reports usage cannot spend unseen, even with
    /// answers far longer than the estimate assumed.
    public func settle(reserved estimate: Double, cost: Cost?, held: Double = 0) {
        state.withLock { s in
            s.reserved -= estimate
            if let cost {
                s.spent += cost.totalUSD
                s.pricedCommands += 1
                if cost.unreportedCalls > 0 {
                    s.heldForUnreported += max(0, estimate, held.isFinite ? held : 0)
                    s.unreportedCalls = s.unreportedCalls.addingSaturating(cost.unreportedCalls)
                }
            } else {
                s.unpricedCommands += 1
            }
        }
    }
}
