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
/// telemetry under its `name`. The telemetry stage is one like any other: it reads the log's
/// fold (`context.log.summary`) as any stage may.
public protocol ExecutionStage: Sendable {
    /// The stage's name in events and in `telemetry.durations_ms`.
    var name: String { get }
    func applies(to state: ExecutionState) -> Bool
    func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState
}

/// What a stage works with besides the state.
public struct StageContext: Sendable {
    public let provider: any GenerationCapability
    /// The command's log: record what the stage did.
    public let log: EventLog
    /// Whether calls should stream text deltas when the provider can.
    public let streaming: Bool

    public init(provider: any GenerationCapability, log: EventLog, streaming: Bool = false) {
        self.provider = provider
        self.log = log
        self.streaming = streaming
    }
}
