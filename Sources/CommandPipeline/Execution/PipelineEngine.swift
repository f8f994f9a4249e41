/// Runs `PlannedCommand`s against one provider through the stages
/// upload → cache → generate → telemetry, and returns `Result<FinalizedCommand, APIError>`.
///
/// An engine is a value that is cheap to share across tasks: the registries it holds
/// (uploaded files, caches) are shared by every command it runs, which is how a file
/// is uploaded once and a cache created once per run.
public struct PipelineEngine: Sendable {
    public let provider: any GenerationCapability
    public let stages: [any ExecutionStage]
    public let clock: any PipelineClock
    public let sinks: [any TelemetrySink]
    /// Deadline for each command, retries and fallback included.
    public let commandTimeout: Duration?
    private let deadlines: DeadlineScheduler
    /// Deletes ephemeral files after success: the upload stage's resolver, when there is one.
    private let files: FileResolver?

    /// An engine with the standard stages.
    public init(provider: any GenerationCapability, configuration: EngineConfiguration = EngineConfiguration()) {
        // Always present: without limits it still pauses every call after a provider 429.
        let limiter = RateLimiter(
            requestsPerMinute: configuration.rateLimit?.requestsPerMinute, tokensPerMinute: configuration.rateLimit?.tokensPerMinute,
            maxPause: configuration.retryPolicy.maxRetryAfter, clock: configuration.clock)
        // One retry layer for every request: generate calls, uploads and cache creation.
        let retrier = Retrier(policy: configuration.retryPolicy, clock: configuration.clock)
        let invoker = CallInvoker(retrier: retrier, callTimeout: configuration.callTimeout, limiter: limiter)
        self.init(
            provider: provider,
            stages: [
                UploadStage(registry: FileRegistry(), resolver: configuration.files, retrier: retrier),
                CacheStage(registry: CacheRegistry(clock: configuration.clock), retrier: retrier),
                GenerateStage(maxConcurrentCalls: configuration.maxConcurrentCalls, invoker: invoker),
                TelemetryStage(),
            ],
            clock: configuration.clock, sinks: configuration.sinks, commandTimeout: configuration.commandTimeout)
    }

    /// An engine with stages of your choosing, run in the order given.
    public init(
        provider: any GenerationCapability, stages: [any ExecutionStage], clock: any PipelineClock = SystemClock(),
        sinks: [any TelemetrySink] = [], commandTimeout: Duration? = nil
    ) {
        self.provider = provider
        self.stages = stages
        self.clock = clock
        self.sinks = sinks
        self.commandTimeout = commandTimeout
        self.deadlines = DeadlineScheduler(clock: clock)
        self.files = stages.lazy.compactMap { ($0 as? UploadStage)?.resolver }.first
    }

    /// Runs the command's primary execution only.
    public func execute(_ command: PlannedCommand) async -> Result<FinalizedCommand, APIError> {
        let result = await withDeadline(command) {
            let run = await primary(command)
            removeEphemeralFiles(of: run.state, after: run.result)
            return run.result
        }
        await record(result, of: command)
        return result
    }

    /// Runs the command and, when the primary execution fails and the plan has a
    /// fallback call, runs that call once with the shared parts (already uploaded
    /// ones included) but no uploads of its own and no cache (seed 002 §7).
    public func executeWithFallback(_ command: PlannedCommand) async -> Result<FinalizedCommand, APIError> {
        let result = await withDeadline(command) { await primaryThenFallback(command) }
        await record(result, of: command)
        return result
    }

    /// Runs `body` within the command deadline. Past it, `body` is cancelled (so nothing it
    /// started keeps running), its result awaited, and a cancellation turned into `timeout`.
    private func withDeadline(
        _ command: PlannedCommand, _ body: @escaping @Sendable () async -> Result<FinalizedCommand, APIError>
    ) async -> Result<FinalizedCommand, APIError> {
        guard let deadline = commandTimeout else { return await body() }
        switch await deadlines.race(deadline, body) {
        case .finished(let result):
            return result
        case .expired(let result):
            guard case .failure(var error) = result, error.kind == .cancelled else { return result }
            error.kind = .timeout
            error.retryable = true
            error.message = "command '\(command.id)' passed its deadline of \(deadline.formattedSeconds) (retries and fallback included)"
            return .failure(error)
        }
    }

    private func primaryThenFallback(_ command: PlannedCommand) async -> Result<FinalizedCommand, APIError> {
        let first = await primary(command)
        guard case .failure(let primaryError) = first.result, let fallbackCall = command.plan.fallbackCall,
            primaryError.kind != .cancelled, primaryError.kind != .invalidCommand
        else {
            removeEphemeralFiles(of: first.state, after: first.result)
            return first.result
        }
        let state = ExecutionState(command: command, mode: .fallback, sharedParts: first.state.sharedParts, calls: [fallbackCall])
        let second = await run(state)
        let result: Result<FinalizedCommand, APIError>
        switch second.result {
        case .success(var finalized):
            finalized.telemetry.usedFallback = true
            finalized.telemetry.primaryError = primaryError.summary
            finalized.telemetry.calls = primaryError.callTelemetry + finalized.telemetry.calls
            finalized.telemetry.durations = first.durations + second.durations
            finalized.telemetry.uploads = first.state.uploads
            finalized.telemetry.cache = first.state.cacheTelemetry
            result = .success(finalized)
        case .failure(var error):
            error.message = "fallback call (\(fallbackCall.model)) failed: \(error.message); primary failed first: \(primaryError.message)"
            error.path = error.path.map { $0.replacingOccurrences(of: "plan.calls[0]", with: "plan.fallback_call") }
            error.primaryError = primaryError.summary
            error.partialResponses = primaryError.partialResponses
            error.failedCalls = primaryError.failedCalls
            if var telemetry = error.telemetry {
                telemetry.usedFallback = true
                telemetry.primaryError = primaryError.summary
                telemetry.calls = primaryError.callTelemetry + telemetry.calls
                telemetry.durations = first.durations + second.durations
                telemetry.uploads = first.state.uploads
                telemetry.cache = first.state.cacheTelemetry
                error.telemetry = telemetry
            }
            result = .failure(error)
        }
        removeEphemeralFiles(of: first.state, after: result)
        return result
    }

    /// Ephemeral uploads are deleted only when the command succeeded (a failed command keeps
    /// its files for the next try), and only inside an explicit files root.
    private func removeEphemeralFiles(of state: ExecutionState, after result: Result<FinalizedCommand, APIError>) {
        guard case .success = result, let files else { return }
        for file in state.ephemeralFiles { _ = files.removeEphemeral(file) }
    }

    // MARK: - The stage loop

    struct Run {
        var state: ExecutionState
        var durations: StageDurations
        var result: Result<FinalizedCommand, APIError>
    }

    private func primary(_ command: PlannedCommand) async -> Run {
        let state = ExecutionState(command: command)
        let issues = command.validationIssues()
        if let first = issues.first {
            let message = issues.count == 1 ? first.message : issues.map { "\($0.path): \($0.message)" }.joined(separator: "; ")
            var error = APIError(.invalidCommand, message, path: first.path)
            error.telemetry = Telemetry(provider: provider.providerName)
            return Run(state: state, durations: StageDurations(), result: .failure(error))
        }
        return await run(state)
    }

    /// The one loop over the stages: each applicable stage turns the state into a new one;
    /// the first error ends the command. Time is measured around stages, never inside them.
    func run(_ initial: ExecutionState) async -> Run {
        var state = initial
        var durations = StageDurations()
        let start = clock.now
        var failure: APIError?
        for stage in stages where stage.applies(to: state) {
            if Task.isCancelled {
                failure = APIError(.cancelled, "command '\(state.command.id)' was cancelled before the \(stage.kind.rawValue) stage", provider: provider.providerName)
                break
            }
            let stageStart = clock.now
            do throws(APIError) {
                state = try await stage.execute(state, provider: provider)
                durations[stage.kind] += clock.now - stageStart
            } catch {
                durations[stage.kind] += clock.now - stageStart
                failure = error
                break
            }
        }
        durations.total = clock.now - start

        var telemetry = Telemetry(
            provider: provider.providerName, calls: state.callTelemetry, durations: durations, uploads: state.uploads,
            cache: state.cacheTelemetry, tokenValidation: state.tokenValidation)
        if var error = failure {
            if Task.isCancelled && error.kind != .cancelled {
                error = APIError(.cancelled, "command '\(state.command.id)' was cancelled: \(error.message)", provider: error.provider)
            }
            if error.callTelemetry.isEmpty { error.callTelemetry = state.callTelemetry }
            telemetry.calls = error.callTelemetry
            error.telemetry = telemetry
            if error.partialResponses.isEmpty { error.partialResponses = state.responses }
            return Run(state: state, durations: durations, result: .failure(error))
        }
        let finalized = FinalizedCommand(
            id: state.command.id, responses: state.responses, usage: state.usage, telemetry: telemetry,
            metadata: state.command.metadata)
        return Run(state: state, durations: durations, result: .success(finalized))
    }

    private func record(_ result: Result<FinalizedCommand, APIError>, of command: PlannedCommand) async {
        for sink in sinks { await sink.record(result, of: command) }
    }
}
