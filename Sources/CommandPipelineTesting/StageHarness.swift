import CommandPipeline

/// One stage run on its own, as the engine's stage loop runs it, with a fresh event log:
/// the state it returned, the events it recorded and their fold.
@dynamicMemberLookup
public struct StageRun: Sendable {
    public let state: ExecutionState
    public let events: [PipelineEvent]
    public let summary: LogSummary
    public var telemetry: Telemetry { summary.telemetry }

    public subscript<Value>(dynamicMember path: KeyPath<ExecutionState, Value>) -> Value { state[keyPath: path] }
}

extension ExecutionStage {
    /// Runs this stage once over `state`, for a stage's own tests.
    public func run(
        _ state: ExecutionState, provider: any GenerationCapability, clock: (any PipelineClock)? = nil, streaming: Bool = false
    ) async throws(APIError) -> StageRun {
        let log = EventLog(commandID: state.command.id, provider: provider.providerName, clock: clock ?? SystemClock(), keepingEvents: true)
        let next = try await execute(state, context: StageContext(provider: provider, log: log, streaming: streaming))
        return StageRun(state: next, events: log.events, summary: log.summary())
    }
}
