/// The end of the command chain: runs the stages in order over the state, each stage that
/// applies turning it into a new one, and records each stage's start and finish. The first
/// error ends the loop. Time is measured around stages, never inside them; the loop knows no
/// stage by name or kind.
struct StageLoop: Sendable {
    let stages: [any ExecutionStage]
    let provider: any GenerationCapability
    let clock: any PipelineClock

    func run(_ input: CommandRun) async -> CommandOutcome {
        var state = input.state
        let log = input.log
        let context = StageContext(provider: provider, log: log, streaming: input.streaming)
        var failure: APIError?
        // One clock reading per stage boundary: a stage's end is the next one's start.
        var reading: Duration?
        for stage in stages where stage.applies(to: state) {
            if Task.isCancelled {
                failure = APIError(.cancelled, "command '\(state.command.id)' was cancelled before the \(stage.name) stage", provider: provider.providerName)
                break
            }
            let start = reading ?? clock.now
            log.record(.stageStarted(stage.name), now: start)
            do throws(APIError) {
                state = try await stage.execute(state, context: context)
            } catch {
                failure = error
            }
            let end = clock.now
            reading = end
            log.record(.stageFinished(stage.name, duration: end - start), now: end)
            if failure != nil { break }
        }
        if var error = failure {
            if Task.isCancelled && error.kind != .cancelled {
                error = APIError(.cancelled, "command '\(state.command.id)' was cancelled: \(error.message)", provider: error.provider)
            }
            if error.provider == nil { error.provider = provider.providerName }
            return CommandOutcome(error, state: state, log: log)
        }
        // The telemetry stage's fold; an engine without one folds the log here.
        let totals = state.summaryTotals ?? {
            let summary = log.summary(estimate: state.command.tokenEstimate)
            return (summary.usage, summary.telemetry)
        }()
        let finalized = FinalizedCommand(
            id: state.command.id, responses: state.responses, usage: totals.usage, telemetry: totals.telemetry, metadata: state.command.metadata)
        return CommandOutcome(finalized, state: state)
    }
}
