/// How an engine runs commands. Every field has a working default. Values are checked when an
/// engine is made from the configuration (`validate()`, `ConfigurationLimits`: the CLI flags'
/// ranges): one out of range is a `ConfigurationError` naming it, never a trap or a silent clamp.
public struct EngineConfiguration: Sendable {
    /// Calls of one command's fan-out in flight at once (1 to 10,000).
    public var maxConcurrentCalls: Int
    /// Time source for waiting and measuring; tests pass a `ManualClock`.
    public var clock: any PipelineClock
    /// How file paths in commands resolve (`fileRoot`, `maximumFileBytes`).
    package var files: FileResolver
    /// The directory file paths in commands resolve against and may not leave (absolute paths
    /// outside it, `..` escapes and symbolic links leading out are refused, checked on the file
    /// really opened). nil: paths resolve against the working directory, unconfined.
    public var fileRoot: String? {
        get { files.confined ? files.baseDirectory : nil }
        set {
            files = newValue.map { FileResolver(confinedTo: $0, maximumFileBytes: files.maximumFileBytes) }
                ?? FileResolver(maximumFileBytes: files.maximumFileBytes)
        }
    }
    /// The largest file the engine opens (default 2 GiB, the largest any supported provider accepts).
    public var maximumFileBytes: Int {
        get { files.maximumFileBytes }
        set { files.maximumFileBytes = newValue }
    }
    /// Receivers of every finished command's `Result` (`TelemetrySink`), inside the engine.
    /// Not the CLI's result sinks (`--sink`, `ResultSink`), which take the written records.
    public var telemetrySinks: [any TelemetrySink]
    /// How each call is retried.
    public var retryPolicy: RetryPolicy
    /// Seeds the retry policy's jitter: the same seed gives the same waits run after run (for
    /// tests of retry timing that keep jitter on). nil: the system's random numbers.
    public var jitterSeed: UInt64? {
        didSet { jitterSource = jitterSeed.map(JitterSource.seeded) ?? .system }
    }
    /// The random numbers the jitter takes (`jitterSeed`; tests may give any function).
    package var jitterSource: JitterSource = .system
    /// Each attempt of a call that takes longer fails with a retryable `timeout` (1 ms to a week; nil: none).
    public var callTimeout: Duration?
    /// Deadline for a whole command, retries and fallback included; past it the command fails
    /// with `timeout` (1 ms to a week; nil: none).
    public var commandTimeout: Duration?
    /// Requests and tokens per minute for every command of the engine together (the ranges of
    /// `--rate-limit-rpm` and `--rate-limit-tpm`).
    public var rateLimit: RateConstraint?
    /// Models' limits and prices: with it, commands are checked before they run (`PreflightUnit`)
    /// and priced after (`CostUnit`). nil: neither.
    public var catalog: ModelCatalog?
    /// The run's spending (and, with a limit, its budget); used with `catalog`.
    public var costLedger: CostLedger?
    /// Hears once each model name the catalog does not know (it runs unchecked and uncosted).
    public var onUnknownModel: (@Sendable (String) -> Void)?
    /// Code run around every command, in this order (`CommandHook`).
    public var hooks: [any CommandHook] = []
    /// Secrets removed from hooks' text (rejections, failures) before it is cut or reported: a
    /// hook program inherits the environment, so its message may quote the key. The CLI gives
    /// the API keys it can see; placeholders (shorter than 12 bytes) are ignored.
    public var secrets: [String] = [] {
        didSet { redactor = SecretRedactor(secrets: secrets) }
    }
    /// The redaction of `secrets` (`SecretRedactor`).
    package var redactor: SecretRedactor = .none
    /// Re-asks of an answer that breaks its call's JSON `response_format` (0–10, checked where the
    /// engine is made; a call's `config.max_repairs` wins). After the last, the call fails with
    /// `invalid_output`.
    public var maxRepairs: Int = 1
    /// Answers kept across runs (`ResponseCache`: `InMemoryResponseCache`, or the SQLite store of
    /// `CommandPipelineSQLite`); a call it answers makes no request. nil: none. The owner calls
    /// its `finish()` after the last command.
    public var responseCache: (any ResponseCache)?
    /// Deployments of logical models (`--deployments`): calls naming one of the router's models
    /// go to its deployments, any other model to the engine's provider (`RoutedProvider`,
    /// `Design/routing.md`). Give the router the engine's clock.
    package var router: Router?

    /// - Parameter maximumFileBytes: nil: 2 GiB.
    public init(
        maxConcurrentCalls: Int = 64, clock: (any PipelineClock)? = nil, fileRoot: String? = nil, maximumFileBytes: Int? = nil,
        telemetrySinks: [any TelemetrySink] = [], retryPolicy: RetryPolicy = RetryPolicy(), jitterSeed: UInt64? = nil,
        callTimeout: Duration? = nil, commandTimeout: Duration? = nil, rateLimit: RateConstraint? = nil
    ) {
        self.maxConcurrentCalls = maxConcurrentCalls
        self.clock = clock ?? SystemClock()
        let maximumFileBytes = maximumFileBytes ?? FileResolver.defaultMaximumFileBytes
        self.files = fileRoot.map { FileResolver(confinedTo: $0, maximumFileBytes: maximumFileBytes) } ?? FileResolver(maximumFileBytes: maximumFileBytes)
        self.telemetrySinks = telemetrySinks
        self.retryPolicy = retryPolicy
        self.jitterSeed = jitterSeed
        self.jitterSource = jitterSeed.map(JitterSource.seeded) ?? .system
        self.callTimeout = callTimeout
        self.commandTimeout = commandTimeout
        self.rateLimit = rateLimit
    }

    @available(*, deprecated, renamed: "init(maxConcurrentCalls:clock:fileRoot:maximumFileBytes:telemetrySinks:retryPolicy:jitterSeed:callTimeout:commandTimeout:rateLimit:)")
    public init(
        maxConcurrentCalls: Int = 64, clock: (any PipelineClock)? = nil, fileRoot: String? = nil,
        sinks: [any TelemetrySink], retryPolicy: RetryPolicy = RetryPolicy(), callTimeout: Duration? = nil,
        commandTimeout: Duration? = nil, rateLimit: RateConstraint? = nil
    ) {
        self.init(
            maxConcurrentCalls: maxConcurrentCalls, clock: clock, fileRoot: fileRoot, telemetrySinks: sinks, retryPolicy: retryPolicy,
            callTimeout: callTimeout, commandTimeout: commandTimeout, rateLimit: rateLimit)
    }

    /// The telemetry sinks, under their old name.
    @available(*, deprecated, renamed: "telemetrySinks")
    public var sinks: [any TelemetrySink] {
        get { telemetrySinks }
        set { telemetrySinks = newValue }
    }

    /// The units around each command, outermost first: sinks see the final outcome, hooks see
    /// the command before anything else (an enriched one is priced and validated), costs are
    /// added to it (and the budget checked before anything else), the deadline bounds everything
    /// else, validation and the catalog's pre-flight checks run before any work.
    /// - Parameter counting: the provider's token counting, for pre-flight checks near a context window.
    package func commandUnits(counting: (any TokenCountingCapability)? = nil) -> [any ChainUnit<CommandRun, CommandOutcome>] {
        var units: [any ChainUnit<CommandRun, CommandOutcome>] = []
        if !telemetrySinks.isEmpty { units.append(TelemetrySinkUnit(sinks: telemetrySinks)) }
        if !hooks.isEmpty { units.append(HookUnit(hooks: hooks, redactor: redactor)) }
        if let catalog { units.append(CostUnit(catalog: catalog, ledger: costLedger)) }
        if let commandTimeout { units.append(DeadlineUnit(deadline: commandTimeout, clock: clock)) }
        units.append(ValidationUnit())
        if let catalog { units.append(PreflightUnit(catalog: catalog, counting: counting, onUnknownModel: onUnknownModel)) }
        return units
    }

    /// The engine's limiter: the configured limits, and the pause after a provider's 429.
    package func rateLimiter() -> RateLimiter {
        RateLimiter(
            requestsPerMinute: rateLimit?.requestsPerMinute, tokensPerMinute: rateLimit?.tokensPerMinute,
            maxPause: retryPolicy.maxRetryAfter, clock: clock)
    }

    /// The chain around each call, outermost first: the response cache (a hit ends the call there),
    /// then the check of a JSON answer (and its repairs) around everything else. The rate-limit unit uses the limiter the
    /// retrier pauses after a 429 (a new one, which the retrier is then given, when it has none).
    package func callChain(retrier: Retrier) -> CallChain {
        // Always present: without limits it still pauses every call after a provider 429 (the
        // retry layer, which sees every failure, pauses it; the unit then holds calls back).
        var retrier = retrier
        let limiter = retrier.pausing ?? rateLimiter()
        retrier.pausing = limiter
        var units: [any ChainUnit<CallInput, Result<GenerationResponse, APIError>>] = [
            RepairUnit(maxRepairs: maxRepairs, redactor: redactor), CacheBypassUnit(policy: retryPolicy), RetryUnit(retrier: retrier), RateLimitUnit(limiter: limiter, clock: clock),
        ]
        // The router outside the per-call timeout: a timed-out attempt is its deployment's
        // failure, and waiting for a deployment is bounded by the command's deadline alone.
        if let router { units.append(RoutingUnit(router: router)) }
        if let callTimeout { units.append(CallTimeoutUnit(timeout: callTimeout, clock: clock)) }
        if let responseCache { units.insert(ResponseCacheUnit(cache: responseCache, files: files), at: 0) }
        return CallChain(units) { await ProviderCall.run($0) }
    }
}
