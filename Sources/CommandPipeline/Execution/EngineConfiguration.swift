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

    public init(
        maxConcurrentCalls: Int = 64, clock: any PipelineClock = SystemClock(), files: FileResolver = FileResolver(),
        sinks: [any TelemetrySink] = []
    ) {
        self.maxConcurrentCalls = maxConcurrentCalls
        self.clock = clock
        self.files = files
        self.sinks = sinks
    }
}
