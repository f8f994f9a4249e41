/// The end of the command chain: runs the stages in order over the state, each stage that
/// applies turning it into a new one, and records each stage's start and finish. The first
/// error ends the loop. Time is measured around stages, never inside them.
struct StageLoop: Sendable {
    let stages: [any ExecutionStage]
    let provider: any GenerationCapability
    let clock: any PipelineClock
    /// Which stages are the telemetry stage, found once (not by comparing names per command).
    private let isTelemetry: [Bool]

    init(stages: [any ExecutionStage], provider: any GenerationCapability, clock: any PipelineClock) {
        self.stages = stages
        self.provider = provider
        self.clock = clock
        isTelemetry = stages.map { $0.name == TelemetryStage.name }
    }

    @inline(__always)
    func run(_ input: CommandRun) async -> CommandOutcome {
        var state = input.state
        let log = input.log
        var context = StageContext(provider: provider, log: log, streaming: input.streaming)
        var failure: APIError?
        let skipping = input.skipping
        // One clock reading per stage boundary: a stage's end is the next one's start.
        var reading: Duration?
        for (i, stage) in stages.enumerated() where (skipping.isEmpty || !skipping.contains(stage.name)) && stage.applies(to: state) {
            if Task.isCancelled {
                failure = APIError(.cancelled, "command '\(state.command.id)' was cancelled before the \(stage.name) stage", provider: provider.providerName)
                break
            }
            let start = reading ?? clock.now
            // Only readers see a stage's start (the fold has no use for it).
            if log.isObserved { log.record(.stageStarted(stage.name), now: start) }
            context.started = start
            do throws(APIError) {
                if let next = try stage.executeWithoutSuspending(state, context: context) {
                    state = next
                } else {
                    state = try await stage.execute(state, context: context)
                }
                // The telemetry stage is last, and only readers of the log see its end (the fold
                // has already been read): unread, it costs no clock reading.
                if isTelemetry[i] && !log.isObserved {
                    reading = nil   // a stage after it reads the clock for its own start
                    continue
                }
                let end = clock.now
                reading = end
                log.recordStageFinished(stage.name, duration: end - start, now: end)
            } catch {
                let end = clock.now
                log.recordStageFinished(stage.name, duration: end - start, now: end)
                failure = error
                break
            }
        }
        if var error = failure {
            if Task.isCancelled && error.kind != .cancelled {
                error = APIError(.cancelled, "command '\(state.command.id)' was cancelled: \(error.message)", provider: error.provider)
            }
            if error.provider == nil { error.provider = provider.providerName }
            return CommandOutcome(error, state: state, log: log)
        }
        let usage: Usage, telemetry: Telemetry
        if let box = state.summaryBox {
            usage = box.value.usage
            telemetry = box.value.telemetry
        } else {
            let summary = log.summary(estimate: state.command.tokenEstimate)
            usage = summary.usage
            telemetry = summary.telemetry
        }
        let finalized = FinalizedCommand(
            id: state.command.id, responses: state.responses, usage: usage, telemetry: telemetry, metadata: state.command.metadata)
        return CommandOutcome(finalized, state: state)
    }
}
