/// One step of a command's execution. A stage reads a state and returns a new one; it
/// never changes the state it was given, and knows nothing of the stages around it, of
/// fallback, or of telemetry: what it did, it records in `context.log`.
///
/// The engine's stage loop (`StageLoop`) runs the stages in order, innermost in the
/// command chain:
///
///     ExecutionState ─▶ upload ─▶ cache ─▶ generate ─▶ telemetry ─▶ FinalizedCommand
///                         │         │          │            │
///                         └─────────┴──────────┴────────────┴──▶ APIError (first failure ends the loop)
///
/// A stage whose `applies(to:)` is false is skipped and costs nothing. A new stage needs
/// only its own file and a place in the list given to `PipelineEngine`: its time appears in
/// telemetry under its `name`.
public protocol ExecutionStage: Sendable {
    /// The stage's name in events and in `telemetry.durations_ms`.
    var name: String { get }
    func applies(to state: ExecutionState) -> Bool
    func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState
    /// The stage's work, done without suspending, when it never needs to (the telemetry stage's
    /// fold): the loop then runs it without an async call of its own. nil, the default: the loop
    /// awaits `execute`.
    func executeWithoutSuspending(_ state: ExecutionState, context: StageContext) throws(APIError) -> ExecutionState?
}

extension ExecutionStage {
    public func executeWithoutSuspending(_ state: ExecutionState, context: StageContext) throws(APIError) -> ExecutionState? { nil }
}

/// What a stage works with besides the state.
public struct StageContext: Sendable {
    public let provider: any GenerationCapability
    /// The command's log: record what the stage did.
    public let log: EventLog
    /// Whether calls should stream text deltas when the provider can.
    public let streaming: Bool
    /// The clock reading at which the stage began, when the engine's stage loop runs it (the
    /// loop reads the clock once per stage boundary); nil otherwise. The telemetry stage ends the
    /// command's total time there rather than reading the clock once more.
    public internal(set) var started: Duration?

    public init(provider: any GenerationCapability, log: EventLog, streaming: Bool = false) {
        self.provider = provider
        self.log = log
        self.streaming = streaming
    }
}
