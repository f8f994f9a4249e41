import Synchronization

/// Per-model metrics for a whole run (seed 000's per-model metrics), fed by each command's event
/// log through the hook interface: per provider and model, calls made, how they failed (by error
/// kind), retries, tokens (input, cached, output) and latency percentiles. Register it as a hook
/// (`EngineConfiguration.hooks`); read it with `snapshot()` at any time.
///
/// A call counts once, when it finishes or fails for good (after its retries); its latency runs
/// from its first attempt to that moment. A fallback call counts under its own model. Commands
/// rejected before any call (validation, pre-flight, a hook) make no calls and count nothing.
///
/// Model names come from input, so the rows are capped (`maxRows`, a row holds an 11 KB
/// histogram): once that many provider–model pairs have rows, calls of any new pair are counted
/// together in one more row whose `others` is true (provider and model `*`).
package final class MetricsCollector: CommandHook {
    public let name = "metrics"
    /// The most distinct provider–model rows kept; others share one row.
    public let maxRows: Int
    private let rows = Mutex<[Key: Row]>([:])
    /// The response cache's work over the run (`response_cache` events): hits, calls asked, answers stored.
    private let responseCache = Mutex(ResponseCacheCounts())
    /// The key of the row for pairs beyond `maxRows`; no provider or model name can equal it
    /// because `others` is not part of any input.
    private static let othersKey = Key(provider: "*", model: "*", others: true)

    private struct Key: Hashable {
        var provider: String
        var model: String
        var others = false
    }

    private struct Row {
        var calls = 0
        var succeeded = 0
        var failures: [String: Int] = [:]
        var retries = 0
        var inputTokens = 0
        var cachedTokens = 0
        var outputTokens = 0
        var unreportedCalls = 0
        var latency = LatencyHistogram()
    }

    /// What one command's calls are doing, kept in its hook scratch space.
    private final class Calls: Sendable {
        struct Call {
            var model: String
            var started: Duration
        }
        /// By call index, from its first attempt to its end.
        let state = Mutex<[Int: Call]>([:])
    }

    /// `maxRows` below 1 is taken as 1.
    public init(maxRows: Int = 1000) { self.maxRows = max(1, maxRows) }

    public func event(_ event: PipelineEvent.Kind, context: HookContext) {
        let calls: Calls
        if let existing = context.scratch["metrics.calls"] as? Calls {
            calls = existing
        } else {
            calls = Calls()
            context.scratch["metrics.calls"] = calls
        }
        switch event {
        case .attemptStarted(let call, let attempt, let model, _):
            guard attempt == 1 else { return }
            let now = context.elapsed
            calls.state.withLock { $0[call] = Calls.Call(model: model, started: now) }
        case .attemptFailed(let call, _, let error, let willRetry):
            // A rejected answer re-asked (structured output) is a repair, not a retry.
            guard willRetry, error.kind != .invalidOutput, let model = calls.state.withLock({ $0[call]?.model }) else { return }
            update(context.provider, model) { $0.retries = $0.retries.addingSaturating(1) }
        case .callFinished(let response):
            let now = context.elapsed
            guard let call = calls.state.withLock({ $0.removeValue(forKey: response.callIndex) }) else { return }
            update(context.provider, call.model) { row in
                row.calls = row.calls.addingSaturating(1)
                row.succeeded = row.succeeded.addingSaturating(1)
                row.unreportedCalls = row.unreportedCalls.addingSaturating(response.usage.unreportedCalls)
                row.inputTokens = row.inputTokens.addingSaturating(response.usage.promptTokens)
                row.cachedTokens = row.cachedTokens.addingSaturating(response.usage.cachedTokens)
                row.outputTokens = row.outputTokens.addingSaturating(response.usage.completionTokens)
                row.latency.record(now - call.started)
            }
        case .callFailed(let index, let error):
            let now = context.elapsed
            guard let call = calls.state.withLock({ $0.removeValue(forKey: index) }) else { return }
            update(context.provider, call.model) { row in
                row.calls = row.calls.addingSaturating(1)
                row.failures[error.kind.rawValue, default: 0] = row.failures[error.kind.rawValue, default: 0].addingSaturating(1)
                row.latency.record(now - call.started)
            }
        case .responseCache(_, let status):
            // A call that misses records `miss`, then `stored` if its answer was kept.
            responseCache.withLock { counts in
                switch ResponseCacheStatus(rawValue: status) {
                case .hit?: counts.hits = counts.hits.addingSaturating(1)
                case .miss?: counts.misses = counts.misses.addingSaturating(1)
                case .stored?:
                    counts.stored = counts.stored.addingSaturating(1)
                    counts.misses = max(0, counts.misses - 1)
                case nil: break
                }
            }
        case .fallbackStarted:
            // The fallback's call is numbered 0 again: what the primary left open is over.
            calls.state.withLock { $0.removeAll() }
        default:
            break
        }
    }

    private func update(_ provider: String, _ model: String, _ change: (inout Row) -> Void) {
        let key = Key(provider: provider, model: model)
        rows.withLock { rows in
            // A known pair keeps its row; a new one gets a row while the named rows (the others
            // row does not count) are fewer than `maxRows`.
            let own = rows[key] != nil || rows.count - (rows[Self.othersKey] == nil ? 0 : 1) < maxRows
            change(&rows[own ? key : Self.othersKey, default: Row()])
        }
    }

    /// The figures so far, one row per provider and model, sorted by provider then model; the
    /// others row, if any, last.
    public func snapshot() -> MetricsSnapshot {
        let rows = self.rows.withLock { $0 }
        return MetricsSnapshot(responseCache: responseCache.withLock { $0 }, rows: rows.sorted { ($0.key.others ? 1 : 0, $0.key.provider, $0.key.model) < ($1.key.others ? 1 : 0, $1.key.provider, $1.key.model) }.map { key, row in
            MetricsSnapshot.Row(
                provider: key.provider, model: key.model, others: key.others, calls: row.calls, succeeded: row.succeeded,
                failures: row.failures.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, retries: row.retries,
                inputTokens: row.inputTokens, cachedTokens: row.cachedTokens, outputTokens: row.outputTokens, unreportedCalls: row.unreportedCalls,
                p50: row.latency.percentile(0.50), p95: row.latency.percentile(0.95), p99: row.latency.percentile(0.99))
        })
    }
}

/// `MetricsCollector`'s figures at one moment.
package struct MetricsSnapshot: Sendable {
    package struct Row: Sendable {
        public var provider: String
        public var model: String
        /// True for the one row counting every provider–model pair beyond `maxRows`.
        public var others: Bool
        /// Calls that ended (succeeded or failed for good).
        public var calls: Int
        public var succeeded: Int
        /// Failed calls by error kind (`rate_limited`, `timeout`, …), sorted by kind.
        public var failures: [(kind: String, count: Int)]
        public var failed: Int { failures.reduce(0) { $0.addingSaturating($1.count) } }
        /// Attempts that failed and were tried again.
        public var retries: Int
        public var inputTokens: Int
        public var cachedTokens: Int
        public var outputTokens: Int
        /// Succeeded calls whose provider did not report usage: not in the token counts, which
        /// are then a lower bound.
        public var unreportedCalls: Int = 0
        public var p50: Duration
        public var p95: Duration
        public var p99: Duration
    }

    public var rows: [Row]
    /// What the response cache did for the run's calls (all zero without one).
    public var responseCache = ResponseCacheCounts()

    public init(responseCache: ResponseCacheCounts = ResponseCacheCounts(), rows: [Row]) {
        self.rows = rows
        self.responseCache = responseCache
    }
}

/// What a response cache did for a run's calls, as `telemetry.calls[i].response_cache` counts
/// them: each call through the cache is one of `hits`, `misses` (asked, answer not kept) or
/// `stored` (asked and kept). Each hit is a request not sent.
package struct ResponseCacheCounts: Sendable, Hashable {
    public var hits = 0
    public var misses = 0
    public var stored = 0
    /// Requests the run did not send because the cache answered.
    public var requestsSaved: Int { hits }
    /// Calls that went through the cache.
    public var calls: Int { hits.addingSaturating(misses).addingSaturating(stored) }

    public init(hits: Int = 0, misses: Int = 0, stored: Int = 0) {
        self.hits = hits
        self.misses = misses
        self.stored = stored
    }
}
