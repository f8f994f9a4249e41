/// Bounds a whole command, retries and fallback included, from the command's start (what the
/// units before it spent, such as hooks, counts). Past the deadline the rest of the
/// chain is cancelled (so nothing it started keeps running), its outcome awaited, and a
/// cancellation turned into `timeout`.
package struct DeadlineUnit: ChainUnit {
    public let deadline: Duration
    private let scheduler: DeadlineScheduler

    public init(deadline: Duration, clock: any PipelineClock) {
        self.deadline = deadline
        self.scheduler = DeadlineScheduler(clock: clock)
    }

    public func handle(_ input: CommandRun, next: Next<CommandRun, CommandOutcome>) async -> CommandOutcome {
        // Counted from the command's start: time spent before this unit (hooks deciding about
        // the command) is part of the command's time.
        let spent = input.log.clock.now - input.log.start
        let left = spent > .zero ? max(.zero, deadline - spent) : deadline
        switch await scheduler.race(left, { await next(input) }) {
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
