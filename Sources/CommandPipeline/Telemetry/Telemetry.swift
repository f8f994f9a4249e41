/// What the engine measured while running a command. Recorded beside the result,
/// never consulted by execution.
public struct Telemetry: Sendable, Hashable {
    public var provider: String
    public var usedFallback: Bool
    /// Set when the primary execution failed and the fallback ran.
    public var primaryError: ErrorSummary?
    /// Attempts beyond the first, summed over the command's calls.
    public var retries: Int { calls.reduce(0) { $0 + $1.retries } }
    /// Time spent waiting between attempts, summed over the command's calls.
    public var retryWait: Duration { calls.reduce(.zero) { $0 + $1.retryWait } }
    /// Each call's attempts, waits and cache bypass (primary calls, then the fallback's).
    public var calls: [CallTelemetry]
    public var durations: StageDurations
    public var uploads: UploadCounts
    /// `nil` when the plan has no cache.
    public var cache: CacheTelemetry?
    /// `nil` when the command has no token estimate.
    public var tokenValidation: TokenValidation?

    public init(
        provider: String, usedFallback: Bool = false, primaryError: ErrorSummary? = nil, calls: [CallTelemetry] = [],
        durations: StageDurations = StageDurations(), uploads: UploadCounts = UploadCounts(),
        cache: CacheTelemetry? = nil, tokenValidation: TokenValidation? = nil
    ) {
        self.provider = provider
        self.usedFallback = usedFallback
        self.primaryError = primaryError
        self.calls = calls
        self.durations = durations
        self.uploads = uploads
        self.cache = cache
        self.tokenValidation = tokenValidation
    }
}

/// Time spent in each stage, keyed by the stage's name (in the order stages first ran),
/// and in the whole command. A new stage's time appears under its name with no change here.
public struct StageDurations: Sendable, Hashable {
    public private(set) var stages: [(name: String, duration: Duration)] = []
    public var total: Duration = .zero
    public init() {}

    /// The time of stage `name`; zero for a stage that did not run.
    public subscript(name: String) -> Duration {
        get { stages.first { $0.name == name }?.duration ?? .zero }
        set {
            if let i = stages.firstIndex(where: { $0.name == name }) { stages[i].duration = newValue } else { stages.append((name, newValue)) }
        }
    }

    public static func == (lhs: StageDurations, rhs: StageDurations) -> Bool {
        lhs.total == rhs.total && lhs.stages.count == rhs.stages.count
            && zip(lhs.stages, rhs.stages).allSatisfy { $0.name == $1.name && $0.duration == $1.duration }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(total)
        for stage in stages { hasher.combine(stage.name) }
    }
}

/// Files uploaded by this command, served from earlier uploads, or left as placeholders.
public struct UploadCounts: Sendable, Hashable {
    public var performed: Int
    public var reused: Int
    public var skipped: Int
    public init(performed: Int = 0, reused: Int = 0, skipped: Int = 0) {
        self.performed = performed
        self.reused = reused
        self.skipped = skipped
    }
}

/// The cache a command used, and whether this command created it.
public struct CacheTelemetry: Sendable, Hashable {
    /// How the provider caches: a stored cache object, or a request prefix.
    public enum Kind: String, Sendable, Hashable {
        case stored
        case prefix
    }

    public var id: String?
    public var key: String
    public var created: Bool
    public var reused: Bool
    /// Why the command ran without the cache its plan asked for (e.g. a context below the
    /// provider's minimum cache size); nil otherwise.
    public var uncachedReason: String?
    /// `nil` when no cache was made (the provider cannot cache).
    public var kind: Kind?
    /// Tokens the cache holds, when the provider said (for a prefix cache: what creating it wrote or found).
    public var tokenCount: Int?
    public init(id: String?, key: String, created: Bool, reused: Bool, kind: Kind? = nil, tokenCount: Int? = nil, uncachedReason: String? = nil) {
        self.id = id
        self.key = key
        self.created = created
        self.reused = reused
        self.uncachedReason = uncachedReason
        self.kind = kind
        self.tokenCount = tokenCount.map { Limits.reportedTokens.clamp($0) }
    }

    /// The telemetry of a cache `reference` leased by a command.
    public init(reference: CacheReference, key: String, created: Bool) {
        let kind: Kind
        switch reference.kind {
        case .stored: kind = .stored
        case .prefix: kind = .prefix
        }
        self.init(id: reference.id, key: key, created: created, reused: !created, kind: kind, tokenCount: reference.tokenCount)
    }
}

extension Duration {
    /// Milliseconds as a `Double`, for reports.
    public var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
