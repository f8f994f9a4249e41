/// Bounds a whole command, retries and fallback included. Past the deadline the rest of the
/// chain is cancelled (so nothing it started keeps running), its outcome awaited, and a
/// cancellation turned into `timeout`.
public struct DeadlineUnit: ChainUnit {
    public let deadline: Duration
    private let scheduler: DeadlineScheduler

    public init(deadline: Duration, clock: any PipelineClock) {
        self.deadline = deadline
        self.scheduler = DeadlineScheduler(clock: clock)
    }

    public func handle(_ input: CommandRun, next: Next<CommandRun, CommandOutcome>) async -> CommandOutcome {
        switch await scheduler.race(deadline, { await next(input) }) {
        case .finished(let outcome):
            return outcome
        case .expired(let outcome):
            guard var error = outcome.error, error.kind == .cancelled else { return outcome }
            error.kind = .timeout
            error.retryable = true
            error.message = "command '\(input.command.id)' passed its deadline of \(deadline.formattedSeconds) (retries and fallback included)"
            return outcome.with(error: error)
        }
    }
}
