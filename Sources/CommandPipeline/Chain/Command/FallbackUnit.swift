/// When the primary execution fails and the plan has a fallback call, runs the rest of the
/// chain once more for that call (seed 002 §7): with the primary's shared parts (uploaded
/// ones included), no uploads of its own and no cache (`ExecutionState.forFallback`).
///
/// No fallback after an invalid command, a cancellation, or once a call has streamed text
/// to the reader (the answer has begun; it is not replaced by another model's).
package struct FallbackUnit: ChainUnit {
    public init() {}

    public func applies(to input: CommandRun) -> Bool { input.command.plan.fallbackCall.isPresent }

    @inline(__always)
    public func handle(_ input: CommandRun, next: Next<CommandRun, CommandOutcome>) async -> CommandOutcome {
        let first = await next(input)
        guard let primaryError = first.error, let call = input.command.plan.fallbackCall,
            primaryError.kind != .cancelled, primaryError.kind != .invalidCommand, !input.log.hasStreamedAny
        else { return first }
        input.log.record(.fallbackStarted(model: call.model, primaryError: primaryError))
        var run = input
        run.state = first.state.forFallback(call)
        let second = await next(run)
        guard var error = second.error else { return second }
        if error.kind != .cancelled {
            error.message = "fallback call (\(call.model)) failed: \(error.message); primary failed first: \(primaryError.message)"
        }
        return second.with(error: error)
    }
}
