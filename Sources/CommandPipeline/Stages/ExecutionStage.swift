/// One step of a command's execution. A stage reads a state and returns a new one;
/// it never changes the state it was given, and knows nothing of the stages around it.
///
/// The engine folds the stages in one loop (`PipelineEngine.run`):
///
///     ExecutionState ─▶ upload ─▶ cache ─▶ generate ─▶ telemetry ─▶ FinalizedCommand
///                         │         │          │            │
///                         └─────────┴──────────┴────────────┴──▶ APIError (first failure ends the loop)
///
/// A stage whose `applies(to:)` is false is skipped and costs nothing.
public protocol ExecutionStage: Sendable {
    /// Which duration in telemetry this stage's time counts towards.
    var kind: StageKind { get }
    func applies(to state: ExecutionState) -> Bool
    func execute(_ state: ExecutionState, provider: any GenerationCapability) async throws(APIError) -> ExecutionState
}

/// The stages the engine knows by name, in the order it runs them.
public enum StageKind: String, Sendable, Hashable, CaseIterable {
    case upload, cache, generate, telemetry
}
