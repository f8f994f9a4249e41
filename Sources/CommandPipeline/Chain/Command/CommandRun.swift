/// What flows into the command chain: the state to run the stages on, and the command's log.
/// (Which stages apply is for the state to say — `ExecutionState.withoutCache()`,
/// `forFallback(_:)` — not for a list of stage names.)
package struct CommandRun: Sendable {
    /// Replacing it (a hook's enriched command, a unit's transform) drops `commandIsValidated`.
    public var state: ExecutionState { didSet { commandIsValidated = false } }
    public let log: EventLog
    /// Ask providers that can stream for deltas (`text_delta` events).
    public var streaming: Bool
    /// The command came in as a `ValidatedCommand` and no unit has replaced the state since:
    /// `ValidationUnit` lets it pass without checking its rules a second time.
    package var commandIsValidated = false

    public init(state: ExecutionState, log: EventLog, streaming: Bool = false) {
        self.state = state
        self.log = log
        self.streaming = streaming
    }

    public var command: PlannedCommand { _read { yield state.command } }
}

/// How a command ended: its result and, beside it (never inside the error), what it left.
/// (Held in one box: an outcome passes through every unit of the chain, and copying it
/// whole at each step cost more than the rest of a command.)
public struct CommandOutcome: Sendable {
    private struct Storage: Sendable {
        var result: Result<FinalizedCommand, APIError>
        var state: ExecutionState
        var telemetry: Telemetry
        var partialResponses: [CallResponse]
        var failedCalls: [Int]
    }

    private var storage: Box<Storage>

    public var result: Result<FinalizedCommand, APIError> { _read { yield storage.value.result } }
    /// The state the stages reached (the fallback's, when it ran).
    public var state: ExecutionState { _read { yield storage.value.state } }
    /// On success, the same as `result`'s telemetry.
    public var telemetry: Telemetry { _read { yield storage.value.telemetry } }
    /// Responses of calls that succeeded before the command failed, and text a broken stream
    /// delivered (`finish_reason` `interrupted`): nothing paid for is lost. Empty on success.
    public var partialResponses: [CallResponse] { _read { yield storage.value.partialResponses } }
    /// Call indices of a fan-out that failed (primary execution).
    public var failedCalls: [Int] { _read { yield storage.value.failedCalls } }

    public init(result: Result<FinalizedCommand, APIError>, state: ExecutionState, telemetry: Telemetry, partialResponses: [CallResponse] = [], failedCalls: [Int] = []) {
        storage = Box(Storage(result: result, state: state, telemetry: telemetry, partialResponses: partialResponses, failedCalls: failedCalls))
    }

    /// A success.
    public init(_ finalized: FinalizedCommand, state: ExecutionState) {
        // The telemetry first: the finalized command then moves into the result, not copied.
        let telemetry = finalized.telemetry
        self.init(result: .success(finalized), state: state, telemetry: telemetry)
    }

    /// A failure, with telemetry and partial results folded from `log`.
    public init(_ error: APIError, state: ExecutionState, log: EventLog) {
        let summary = log.summary(partials: true)
        self.init(result: .failure(error), state: state, telemetry: summary.telemetry, partialResponses: summary.partialResponses, failedCalls: summary.failedCalls)
    }

    public var command: PlannedCommand { _read { yield state.command } }
    public var succeeded: Bool { if case .success = result { true } else { false } }
    public var error: APIError? { if case .failure(let error) = result { error } else { nil } }

    /// Usage of the responses the command returns (partial ones on failure).
    public var usage: Usage {
        switch result {
        case .success(let finalized): finalized.usage
        case .failure: partialResponses.reduce(Usage.zero) { $0 + $1.usage }
        }
    }

    /// The same outcome with another error (a unit rewording a failure).
    public func with(error: APIError) -> CommandOutcome {
        var storage = self.storage.value
        storage.result = .failure(error)
        var copy = self
        copy.storage = Box(storage)
        return copy
    }
}
