/// Folds the command's event log into its telemetry and usage (`LogSummary`), and checks
/// usage against the command's token estimate (seed 002 §6). An ordinary stage: it reads the
/// log's fold through `context.log`, as any stage can, and puts it in the state.
package struct TelemetryStage: ExecutionStage {
    public static let name = "telemetry"
    public init() {}

    public var name: String { Self.name }

    public func applies(to state: ExecutionState) -> Bool { true }

    public func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState {
        state.with(summary: context.log.summary(estimate: state.command.tokenEstimate))
    }
}
