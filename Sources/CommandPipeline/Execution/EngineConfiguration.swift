/// How an engine runs commands. Every field has a working default.
public struct EngineConfiguration: Sendable {
    /// Calls of one command's fan-out in flight at once.
    public var maxConcurrentCalls: Int
    /// Time source for waiting and measuring; tests pass a `ManualClock`.
    public var clock: any PipelineClock
    /// How file paths in commands resolve (and whether they are confined to a root).
    public var files: FileResolver
    /// Receivers of every finished command.
    public var sinks: [any TelemetrySink]
    /// How each call is retried.
    public var retryPolicy: RetryPolicy
    /// Each attempt of a call that takes longer fails with a retryable `timeout`.
    public var callTimeout: Duration?
    /// Deadline for a whole command, retries and fallback included; past it the command fails with `timeout`.
    public var commandTimeout: Duration?
    /// Requests and tokens per minute for every command of the engine together.
    public var rateLimit: RateConstraint?

    public init(
        maxConcurrentCalls: Int = 64, clock: any PipelineClock = SystemClock(), files: FileResolver = FileResolver(),
        sinks: [any TelemetrySink] = [], retryPolicy: RetryPolicy = RetryPolicy(), callTimeout: Duration? = nil,
        commandTimeout: Duration? = nil, rateLimit: RateConstraint? = nil
    ) {
        self.maxConcurrentCalls = maxConcurrentCalls
        self.clock = clock
        self.files = files
        self.sinks = sinks
        self.retryPolicy = retryPolicy
        self.callTimeout = callTimeout
        self.commandTimeout = commandTimeout
        self.rateLimit = rateLimit
    }
}
