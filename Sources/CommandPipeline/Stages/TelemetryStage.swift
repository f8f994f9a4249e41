/// Folds the command's event log into its telemetry and usage (`LogSummary`), and checks
/// usage against the command's token estimate (seed 002 §6).
public struct TelemetryStage: ExecutionStage {
    public static let name = "telemetry"
    public init() {}

    public var name: String { Self.name }

    public func applies(to state: ExecutionState) -> Bool { true }

    public func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState {
        fold(state, context)
    }

    /// The fold never suspends: the loop runs it without an async call.
    public func executeWithoutSuspending(_ state: ExecutionState, context: StageContext) throws(APIError) -> ExecutionState? {
        fold(state, context)
    }

    @inline(__always)
    private func fold(_ state: ExecutionState, _ context: StageContext) -> ExecutionState {
        // The total ends where this stage began: the loop's last clock reading, a moment ago.
        state.with(fold: context.log.finishedFold(estimate: state.command.tokenEstimate, now: context.started))
    }
}
