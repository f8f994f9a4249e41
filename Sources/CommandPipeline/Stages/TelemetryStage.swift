/// Adds up the responses' usage and checks it against the command's token estimate.
public struct TelemetryStage: ExecutionStage {
    public init() {}

    public var kind: StageKind { .telemetry }

    public func applies(to state: ExecutionState) -> Bool { true }

    public func execute(_ state: ExecutionState, provider: any GenerationCapability) async throws(APIError) -> ExecutionState {
        let usage = state.responses.reduce(Usage.zero) { $0 + $1.usage }
        let validation = state.command.tokenEstimate.map { TokenValidation(estimate: $0, actual: usage.totalTokens) }
        return state.with(usage: usage, tokenValidation: validation)
    }
}
