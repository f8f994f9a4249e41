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

/// Time spent in each stage, and in the whole command.
public struct StageDurations: Sendable, Hashable {
    public var upload: Duration = .zero
    public var cache: Duration = .zero
    public var generate: Duration = .zero
    public var telemetry: Duration = .zero
    public var total: Duration = .zero
    public init() {}

    public subscript(stage: StageKind) -> Duration {
        get {
            switch stage {
            case .upload: upload
            case .cache: cache
            case .generate: generate
            case .telemetry: telemetry
            }
        }
        set {
            switch stage {
            case .upload: upload = newValue
            case .cache: cache = newValue
            case .generate: generate = newValue
            case .telemetry: telemetry = newValue
            }
        }
    }

    static func + (lhs: StageDurations, rhs: StageDurations) -> StageDurations {
        var sum = StageDurations()
        for stage in StageKind.allCases { sum[stage] = lhs[stage] + rhs[stage] }
        sum.total = lhs.total + rhs.total
        return sum
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
