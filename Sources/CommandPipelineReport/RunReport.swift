import CommandPipeline

/// What a run did, folded from its result records (the lines `pipeline run` and
/// `pipeline batch collect` write) one at a time, in memory that depends on the number of
/// models and latency bins, never on the number of results: totals, one row per provider and
/// model, failures by kind with their first few messages, the cache's effect, and the lines that
/// were not results. `pipeline report` renders it as a page; the run's `--stats` table renders
/// its rows (`init(metrics:)`), so both print one shape of figures. A Swift user folds results
/// files the same way: `add(line:source:line:)` for each line, then read `totals`, `rows`,
/// `failures`, `cache` and `badLines`.
///
/// A record counts under the model that answered it (its last response's model, else the model
/// its cost names). A command that failed before any answer names no model in its record: it
/// counts in the totals and in `failures` by kind, and in `failedBeforeAnswer` (by kind), not in
/// a row — a row is a model, and there is none to name.
public struct RunReport: Sendable {
    /// Coarse latency bins for a distribution, in milliseconds: each bin holds values below
    /// its bound and at or above the previous one; the last holds the rest.
    public static let binBoundsMs: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000]
    /// Distinct provider–model rows kept; further pairs share one row (`others`).
    public static let maxRows = 1000
    /// Distinct failure kinds kept (kinds come from input); further ones count as `other`, in
    /// `failures` and in each row's `failures` alike.
    public static let maxKinds = 32
    /// Unicode scalars kept of a provider, model or kind name (names come from input): a longer
    /// one is cut where its key is made, so no name can grow the report or its page.
    public static let nameCharacters = 200
    /// Messages kept per failure kind, and characters kept of each.
    public static let samplesPerKind = 3
    public static let sampleCharacters = 300
    /// Bad lines named (all are counted).
    public static let namedBadLines = 20

    public struct Row: Sendable {
        public var provider: String
        public var model: String
        /// True for the one row counting every provider–model pair beyond `maxRows`.
        public var others = false
        /// Commands (results) counted under this row; 0 in rows made from `MetricsSnapshot`.
        public var commands = 0
        public var calls = 0
        public var succeeded = 0
        /// Failures by error kind, sorted by kind.
        public var failures: [String: Int] = [:]
        public var failed: Int { failures.values.saturatingSum { $0 } }
        public var retries = 0
        public var inputTokens = 0
        public var cachedTokens = 0
        public var outputTokens = 0
        /// Calls whose provider did not report usage: not in the token counts (a lower bound then).
        public var unreportedCalls = 0
        public var costUSD = 0.0
        /// Latency percentiles: of each call (`init(metrics:)`), or of each command from results.
        public var p50: Duration = .zero
        public var p95: Duration = .zero
        public var p99: Duration = .zero
        /// Counts per `binBoundsMs` bin (one more than the bounds); empty when not known.
        public var latencyBins: [Int] = []
        var histogram = LatencyHistogram()

        public init(provider: String, model: String) {
            self.provider = provider
            self.model = model
        }
    }

    public struct Totals: Sendable, Hashable {
        public var commands = 0
        public var succeeded = 0
        public var failed = 0
        public var fallbacks = 0
        /// Calls made: the entries of the records' `telemetry.calls` (a fallback's call included).
        public var calls = 0
        public var retries = 0
        public var retryWaitMs = 0.0
        public var inputTokens = 0
        public var cachedTokens = 0
        public var outputTokens = 0
        /// Calls whose provider did not report usage (`usage.unreported_calls`): not in the token
        /// counts, which are then a lower bound.
        public var unreportedCalls = 0
        public var costUSD = 0.0
        public var pricedCommands = 0
        /// The commands' own durations added up (not the run's wall time, which results do not record).
        public var commandMs = 0.0
        /// Records of `pipeline batch collect`.
        public var batchCommands = 0
    }

    public struct CacheEffect: Sendable, Hashable {
        public var uploadsPerformed = 0
        public var uploadsReused = 0
        public var cachesCreated = 0
        public var cachesReused = 0
        /// Commands that asked for a cache and ran without one.
        public var uncached = 0
        /// Calls retried without their cache.
        public var cacheBypassed = 0
        /// Prompt tokens read from a provider cache (`usage.cached_tokens`).
        public var cachedTokens = 0
        /// The response cache (`--response-cache`), calls by `telemetry.calls[i].response_cache`:
        /// answered from the cache with no request sent (`hits`, each a request saved), asked
        /// and the answer not kept (`misses`), asked and the answer kept (`stored`).
        public var responseCacheHits = 0
        public var responseCacheMisses = 0
        public var responseCacheStored = 0

        /// The three counts as the run's `--stats` keeps them.
        package var responseCache: ResponseCacheCounts {
            get { ResponseCacheCounts(hits: responseCacheHits, misses: responseCacheMisses, stored: responseCacheStored) }
            set {
                responseCacheHits = newValue.hits
                responseCacheMisses = newValue.misses
                responseCacheStored = newValue.stored
            }
        }
    }

    public struct FailureKind: Sendable, Hashable {
        public var kind: String
        public var count: Int
        /// The first messages seen, at most `samplesPerKind`, each cut to `sampleCharacters`.
        public var samples: [String]
    }

    public struct BadLine: Sendable, Hashable {
        public var source: String
        public var line: Int
        public var problem: String
    }

    public private(set) var totals = Totals()
    public private(set) var cache = CacheEffect()
    /// Lines that were not result records: every one counted, the first `namedBadLines` named.
    public private(set) var badLineCount = 0
    public private(set) var badLines: [BadLine] = []
    private var rowsByKey: [Key: Row] = [:]
    private var failureKinds: [String: FailureKind] = [:]
    private var unanswered: [String: Int] = [:]

    /// Commands that failed before any model answered (their records name no model), by error
    /// kind, the most frequent first. They are in `totals` and `failures`, in no row.
    public var failedBeforeAnswer: [(kind: String, count: Int)] {
        unanswered.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { (kind: $0.key, count: $0.value) }
    }

    private struct Key: Hashable {
        var provider: String
        var model: String
        var others = false
    }

    private static let othersKey = Key(provider: "*", model: "*", others: true)

    public init() {}

    /// The run's per-model call metrics (`MetricsCollector`) as rows; no totals (the CLI's `--stats`).
    package init(metrics: MetricsSnapshot) {
        cache.responseCache = metrics.responseCache
        for source in metrics.rows {
            let key = Key(provider: Self.cut(source.provider, to: Self.nameCharacters), model: Self.cut(source.model, to: Self.nameCharacters), others: source.others)
            var row = rowsByKey[key] ?? Row(provider: key.provider, model: key.model)
            row.others = source.others
            row.calls = row.calls.addingSaturating(source.calls)
            row.succeeded = row.succeeded.addingSaturating(source.succeeded)
            for (kind, count) in source.failures {
                let kind = Self.cut(kind, to: Self.nameCharacters)
                let kept = row.failures[kind] != nil || row.failures.count < Self.maxKinds ? kind : "other"
                row.failures[kept] = row.failures[kept, default: 0].addingSaturating(count)
            }
            row.retries = source.retries
            row.inputTokens = source.inputTokens
            row.cachedTokens = source.cachedTokens
            row.outputTokens = source.outputTokens
            row.unreportedCalls = source.unreportedCalls
            row.p50 = source.p50
            row.p95 = source.p95
            row.p99 = source.p99
            rowsByKey[key] = row
        }
    }

    /// One row per provider and model, sorted by provider then model; the others row last.
    public var rows: [Row] {
        rowsByKey.sorted { ($0.key.others ? 1 : 0, $0.key.provider, $0.key.model) < ($1.key.others ? 1 : 0, $1.key.provider, $1.key.model) }.map { key, row in
            guard row.histogram.count > 0 else { return row }
            var row = row
            row.p50 = row.histogram.percentile(0.50)
            row.p95 = row.histogram.percentile(0.95)
            row.p99 = row.histogram.percentile(0.99)
            return row
        }
    }

    /// Failures by kind, the most frequent first.
    public var failures: [FailureKind] {
        failureKinds.values.sorted { ($1.count, $0.kind) < ($0.count, $1.kind) }
    }

    /// Adds one line of a results file (`line` is its number, from 1, for naming it when bad).
    /// Blank lines are ignored. Returns the problem when the line is not a result record.
    @discardableResult
    public mutating func add(line bytes: [UInt8], source: String, line: Int) -> String? {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { return nil }
        let problem: String
        do throws(JSONParser.SyntaxError) {
            let value = try JSONParser.parse(bytes, options: .validateUTF8)
            guard let why = add(record: value) else { return nil }
            problem = why
        } catch {
            problem = "not JSON: \(error.message)"
        }
        badLine(source: source, line: line, problem: problem)
        return problem
    }

    /// Counts a line that could not be read as a result (a truncated file's last line, say).
    public mutating func badLine(source: String, line: Int, problem: String) {
        badLineCount = badLineCount.addingSaturating(1)
        if badLines.count < Self.namedBadLines { badLines.append(BadLine(source: source, line: line, problem: problem)) }
    }

    /// Adds one result record; returns why it is not one (and counts nothing) otherwise.
    public mutating func add(record value: JSONValue) -> String? {
        guard let record = value.objectValue else { return "not a result record: a JSON \(value.typeName), not an object" }
        guard let status = record["status"]?.stringValue, status == "succeeded" || status == "failed" else {
            return "not a result record: no \"status\" of \"succeeded\" or \"failed\""
        }
        guard let telemetry = record["telemetry"]?.objectValue else { return "not a result record: no \"telemetry\" object" }
        let succeeded = status == "succeeded"
        let responses = record["responses"]?.arrayValue ?? []
        let provider = Self.cut(telemetry["provider"]?.stringValue ?? "", to: Self.nameCharacters)
        var model = ""
        if let last = responses.last?.objectValue?["model"]?.stringValue {
            model = Self.cut(last, to: Self.nameCharacters)
        } else if let request = telemetry["cost"]?.objectValue?["requests"]?.arrayValue?.last?.objectValue?["model"]?.stringValue {
            model = Self.cut(request, to: Self.nameCharacters)
        }
        let usage = record["usage"]?.objectValue
        var input = Self.count(usage?["prompt_tokens"]), output = Self.count(usage?["completion_tokens"]), cached = Self.count(usage?["cached_tokens"])
        let unreported = Self.count(usage?["unreported_calls"])
        if unreported > 0 {
            // The command's counts are unknown (`null`): the responses that reported add up to a lower bound.
            for response in responses {
                guard let counts = response.objectValue?["usage"]?.objectValue, counts["unreported_calls"] == nil else { continue }
                input = input.addingSaturating(Self.count(counts["prompt_tokens"]))
                output = output.addingSaturating(Self.count(counts["completion_tokens"]))
                cached = cached.addingSaturating(Self.count(counts["cached_tokens"]))
            }
        }
        let cost = Self.amount(telemetry["cost"]?.objectValue?["usd"])
        let retries = Self.count(telemetry["retries"])
        let durations = telemetry["durations_ms"]?.objectValue
        let totalMs = Self.amount(durations?["total"])
        // Beyond `maxKinds` distinct kinds, a new one counts as "other" (here and in its row).
        let kind: String? = succeeded ? nil : {
            let name = Self.cut(record["error"]?.objectValue?["kind"]?.stringValue ?? "unknown", to: Self.nameCharacters)
            return failureKinds[name] != nil || failureKinds.count < Self.maxKinds ? name : "other"
        }()
        // Each entry of `telemetry.calls` is one call (its attempts inside), the fallback's included.
        let calls = telemetry["calls"]?.arrayValue?.count ?? 0

        totals.commands = totals.commands.addingSaturating(1)
        if succeeded { totals.succeeded = totals.succeeded.addingSaturating(1) } else { totals.failed = totals.failed.addingSaturating(1) }
        if telemetry["used_fallback"]?.boolValue == true && succeeded { totals.fallbacks = totals.fallbacks.addingSaturating(1) }
        if telemetry["batch"]?.boolValue == true { totals.batchCommands = totals.batchCommands.addingSaturating(1) }
        totals.calls = totals.calls.addingSaturating(calls)
        totals.retries = totals.retries.addingSaturating(retries)
        totals.retryWaitMs += Self.amount(telemetry["retry_wait_ms"])
        totals.inputTokens = totals.inputTokens.addingSaturating(input)
        totals.cachedTokens = totals.cachedTokens.addingSaturating(cached)
        totals.outputTokens = totals.outputTokens.addingSaturating(output)
        totals.unreportedCalls = totals.unreportedCalls.addingSaturating(unreported)
        totals.costUSD += cost
        if telemetry["cost"]?.objectValue != nil { totals.pricedCommands = totals.pricedCommands.addingSaturating(1) }
        totals.commandMs += totalMs

        if let uploads = telemetry["uploads"]?.objectValue {
            cache.uploadsPerformed = cache.uploadsPerformed.addingSaturating(Self.count(uploads["performed"]))
            cache.uploadsReused = cache.uploadsReused.addingSaturating(Self.count(uploads["reused"]))
        }
        if let entry = telemetry["cache"]?.objectValue {
            if entry["created"]?.boolValue == true { cache.cachesCreated = cache.cachesCreated.addingSaturating(1) }
            if entry["reused"]?.boolValue == true { cache.cachesReused = cache.cachesReused.addingSaturating(1) }
            if entry["uncached_reason"] != nil { cache.uncached = cache.uncached.addingSaturating(1) }
        }
        for call in telemetry["calls"]?.arrayValue ?? [] {
            guard let call = call.objectValue else { continue }
            if call["cache_bypassed"]?.boolValue == true { cache.cacheBypassed = cache.cacheBypassed.addingSaturating(1) }
            switch call["response_cache"]?.stringValue {
            case "hit": cache.responseCache.hits = cache.responseCache.hits.addingSaturating(1)
            case "miss": cache.responseCache.misses = cache.responseCache.misses.addingSaturating(1)
            case "stored": cache.responseCache.stored = cache.responseCache.stored.addingSaturating(1)
            default: break
            }
        }
        cache.cachedTokens = cache.cachedTokens.addingSaturating(cached)

        if let kind {
            var entry = failureKinds[kind] ?? FailureKind(kind: kind, count: 0, samples: [])
            entry.count = entry.count.addingSaturating(1)
            if entry.samples.count < Self.samplesPerKind, let message = record["error"]?.objectValue?["message"]?.stringValue {
                entry.samples.append(Self.cut(message, to: Self.sampleCharacters))
            }
            failureKinds[kind] = entry
        }

        if !succeeded && model.isEmpty, let kind {
            unanswered[kind] = unanswered[kind, default: 0].addingSaturating(1)
            return nil
        }
        let key = Key(provider: provider, model: model)
        let own = rowsByKey[key] != nil || rowsByKey.count - (rowsByKey[Self.othersKey] == nil ? 0 : 1) < Self.maxRows
        let rowKey = own ? key : Self.othersKey
        var row = rowsByKey[rowKey] ?? {
            var row = Row(provider: rowKey.provider, model: rowKey.model)
            row.others = rowKey.others
            row.latencyBins = [Int](repeating: 0, count: Self.binBoundsMs.count + 1)
            return row
        }()
        row.commands = row.commands.addingSaturating(1)
        row.calls = row.calls.addingSaturating(calls)
        if succeeded { row.succeeded = row.succeeded.addingSaturating(1) }
        if let kind { row.failures[kind, default: 0] = row.failures[kind, default: 0].addingSaturating(1) }
        row.retries = row.retries.addingSaturating(retries)
        row.inputTokens = row.inputTokens.addingSaturating(input)
        row.cachedTokens = row.cachedTokens.addingSaturating(cached)
        row.outputTokens = row.outputTokens.addingSaturating(output)
        row.unreportedCalls = row.unreportedCalls.addingSaturating(unreported)
        row.costUSD += cost
        if durations != nil {
            // A row made by `init(metrics:)` has no bins yet.
            if row.latencyBins.count != Self.binBoundsMs.count + 1 { row.latencyBins = [Int](repeating: 0, count: Self.binBoundsMs.count + 1) }
            row.histogram.record(.microseconds(Int(min(totalMs, 1e12) * 1000)))
            let bin = Self.binBoundsMs.firstIndex { totalMs < $0 } ?? Self.binBoundsMs.count
            row.latencyBins[bin] = row.latencyBins[bin].addingSaturating(1)
        }
        rowsByKey[rowKey] = row
        return nil
    }

    /// `text` cut to its first `limit` Unicode scalars (not characters: one character can hold
    /// any number of combining scalars).
    static func cut(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: text.unicodeScalars.prefix(limit))
        return String(scalars)
    }

    /// A count from a record: a whole number ≥ 0, else 0.
    private static func count(_ value: JSONValue?) -> Int { max(0, value?.intValue ?? 0) }

    /// An amount from a record: a finite number ≥ 0 below 10^12, else 0, so no sum can overflow to infinity.
    private static func amount(_ value: JSONValue?) -> Double {
        guard let d = value?.doubleValue, d.isFinite, d >= 0, d < 1e12 else { return 0 }
        return d
    }
}
