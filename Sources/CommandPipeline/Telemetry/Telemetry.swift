/// What the engine measured while running a command. Recorded beside the result,
/// never consulted by execution.
///
/// A value with copy-on-write storage (`CopyOnWrite`), like `Array`: telemetry is some 350 bytes and passes
/// through the log, the state, the finalized command and the outcome, so a copy is one
/// reference, and a change copies only when the storage is shared.
public struct Telemetry: Sendable, Hashable {
    private struct Fields: Sendable, Hashable {
        var provider: String
        var usedFallback: Bool
        var primaryError: ErrorSummary?
        var calls: [CallTelemetry]
        var durations: StageDurations
        var uploads: UploadCounts
        var cache: CacheTelemetry?
        var tokenValidation: TokenValidation?
        var cost: Cost?
        var hookFailures: [HookFailure] = []
        var billedAttempts: [BilledAttempt] = []
    }

    private var storage: CopyOnWrite<Fields>

    private var fields: Fields {
        _read { yield storage.value }
        _modify { yield &storage.value }
    }

    public var provider: String {
        get { fields.provider }
        set { fields.provider = newValue }
    }
    public var usedFallback: Bool {
        get { fields.usedFallback }
        set { fields.usedFallback = newValue }
    }
    /// Set when the primary execution failed and the fallback ran.
    package var primaryError: ErrorSummary? {
        get { fields.primaryError }
        set { fields.primaryError = newValue }
    }
    /// Attempts beyond the first, summed over the command's calls.
    public var retries: Int { calls.reduce(0) { $0 + $1.retries } }
    /// Time spent waiting between attempts, summed over the command's calls.
    public var retryWait: Duration { calls.reduce(.zero) { $0 + $1.retryWait } }
    /// Each call's attempts, waits and cache bypass (primary calls, then the fallback's).
    package var calls: [CallTelemetry] {
        get { fields.calls }
        set { fields.calls = newValue }
    }
    package var durations: StageDurations {
        get { fields.durations }
        _modify { yield &fields.durations }
    }
    package var uploads: UploadCounts {
        get { fields.uploads }
        _modify { yield &fields.uploads }
    }
    /// `nil` when the plan has no cache.
    public var cache: CacheTelemetry? {
        get { fields.cache }
        set { fields.cache = newValue }
    }
    /// Hooks that failed after the command ended (`CommandHook`); empty without hooks.
    package var hookFailures: [HookFailure] {
        get { fields.hookFailures }
        set { fields.hookFailures = newValue }
    }
    /// Attempts that failed after their answer reported usage (`APIError.billedUsage`), in the
    /// order they failed: billed by the provider, priced by `CostUnit`. Empty in the common case.
    package var billedAttempts: [BilledAttempt] {
        get { fields.billedAttempts }
        set { fields.billedAttempts = newValue }
    }
    /// `nil` when the command has no token estimate.
    package var tokenValidation: TokenValidation? {
        get { fields.tokenValidation }
        set { fields.tokenValidation = newValue }
    }

    /// What the command's responses cost by the catalog's prices (`CostUnit`); nil when
    /// unpriced (no catalog, or no priced model answered).
    public var cost: Cost? {
        get { fields.cost }
        set { fields.cost = newValue }
    }

    package init(
        provider: String, usedFallback: Bool = false, primaryError: ErrorSummary? = nil, calls: [CallTelemetry] = [],
        durations: StageDurations = StageDurations(), uploads: UploadCounts = UploadCounts(),
        cache: CacheTelemetry? = nil, tokenValidation: TokenValidation? = nil
    ) {
        storage = CopyOnWrite(Fields(
            provider: provider, usedFallback: usedFallback, primaryError: primaryError, calls: calls, durations: durations, uploads: uploads,
            cache: cache, tokenValidation: tokenValidation))
    }

    public static func == (lhs: Telemetry, rhs: Telemetry) -> Bool { lhs.storage.shares(with: rhs.storage) || lhs.fields == rhs.fields }

    public func hash(into hasher: inout Hasher) { hasher.combine(fields) }
}

/// Time spent in each stage, keyed by the name the stage declares (`ExecutionStage.name`), in
/// the order the stages first ran, and in the whole command. A new stage's time appears under
/// its name with no change here: nothing in this type knows a stage.
package struct StageDurations: Sendable, Hashable {
    private var entries: [Entry] = []
    public var total: Duration = .zero

    private struct Entry: Sendable, Hashable {
        var name: String
        var duration: Duration
    }

    public init() {}

    /// The stages that ran, with their time, in the order they first ran.
    public var stages: [(name: String, duration: Duration)] { entries.map { ($0.name, $0.duration) } }

    /// Adds `duration` to stage `name`'s time (a stage that runs twice, as in a fallback, adds up).
    public mutating func add(_ duration: Duration, to name: String) {
        if let i = entries.firstIndex(where: { $0.name == name }) { entries[i].duration += duration } else { entries.append(Entry(name: name, duration: duration)) }
    }

    /// The time of stage `name`; zero for a stage that did not run.
    public subscript(name: String) -> Duration {
        get { entries.first { $0.name == name }?.duration ?? .zero }
        set {
            if let i = entries.firstIndex(where: { $0.name == name }) { entries[i].duration = newValue } else { entries.append(Entry(name: name, duration: newValue)) }
        }
    }
}

/// Files uploaded by this command, served from earlier uploads, or left as placeholders.
package struct UploadCounts: Sendable, Hashable {
    public var performed: Int
    public var reused: Int
    public var skipped: Int
    public init(performed: Int = 0, reused: Int = 0, skipped: Int = 0) {
        self.performed = performed
        self.reused = reused
        self.skipped = skipped
    }
}

/// A failed attempt whose answer reported usage: what the provider billed for it.
package struct BilledAttempt: Sendable, Hashable {
    public var callIndex: Int
    /// 1-based.
    public var attempt: Int
    public var model: String
    public var usage: Usage
    public init(callIndex: Int, attempt: Int, model: String, usage: Usage) {
        self.callIndex = callIndex
        self.attempt = attempt
        self.model = model
        self.usage = usage
    }
}

/// The cache a command used, and whether this command created it.
public struct CacheTelemetry: Sendable, Hashable {
    public var id: String?
    public var key: String
    public var created: Bool
    public var reused: Bool
    /// Why the command ran without the cache its plan asked for (e.g. a context below the
    /// provider's minimum cache size); nil otherwise.
    public var uncachedReason: String?
    /// How the provider caches: `stored` (a cache object) or `prefix` (a request prefix,
    /// `CacheReference.prefixPartCount`); `nil` when no cache was made (the provider cannot cache).
    public var kind: String?
    /// Tokens the cache holds, when the provider said (for a prefix cache: what creating it wrote or found).
    public var tokenCount: Int?
    /// When this command created the cache: the usage the creating request's answer reported
    /// (`CacheReference.creationUsage`), priced on this command. nil otherwise.
    public var creationUsage: Usage?
    /// When this command created the cache: the time to live it asked for, for the storage price.
    public var ttlSeconds: Int?
    /// The model the cache was made for, when one was made or found (prices its creation).
    public var model: String?
    public init(
        id: String?, key: String, created: Bool, reused: Bool, kind: String? = nil, tokenCount: Int? = nil, uncachedReason: String? = nil,
        creationUsage: Usage? = nil, ttlSeconds: Int? = nil
    ) {
        self.id = id
        self.key = key
        self.created = created
        self.reused = reused
        self.uncachedReason = uncachedReason
        self.kind = kind
        self.tokenCount = tokenCount.map { Limits.reportedTokens.clamp($0) }
        self.creationUsage = creationUsage
        self.ttlSeconds = ttlSeconds
    }

    /// The telemetry of a cache `reference` leased by a command; a command that `created` it
    /// carries what creating it cost (its usage, and the `ttlSeconds` it is kept for).
    public init(reference: CacheReference, key: String, created: Bool, ttlSeconds: Int? = nil) {
        let kind = reference.prefixPartCount == nil ? "stored" : "prefix"
        self.init(
            id: reference.id, key: key, created: created, reused: !created, kind: kind, tokenCount: reference.tokenCount,
            creationUsage: created ? reference.creationUsage : nil, ttlSeconds: created ? ttlSeconds : nil)
        model = reference.model
    }
}

extension Duration {
    /// Milliseconds as a `Double`, for reports (the package's own: `Duration` is not ours to extend for users).
    package var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
