/// Runs `PlannedCommand`s against one provider. A command goes through one chain, folded
/// once when the engine is made:
///
///     telemetry sinks ▶ hooks ▶ deadline ▶ validation ▶ fallback ▶ stage loop (upload ▶ cache ▶ generate ▶ telemetry)
///
/// and each call of the generate stage through the call chain:
///
///     response cache ▶ repair ▶ cache bypass ▶ retry ▶ rate limits ▶ per-call timeout ▶ provider
///
/// Every step records into the command's `EventLog`; telemetry is its fold. A command ends in
/// one `CommandOutcome`; `execute` and `executeWithFallback` return its `Result`.
///
/// An engine is a value that is cheap to share across tasks: the registries it holds
/// (uploaded files, caches) are shared by every command it runs, which is how a file
/// is uploaded once and a cache created once per run.
public struct PipelineEngine: Sendable {
    public var provider: any GenerationCapability { storage.provider }
    public var stages: [any ExecutionStage] { storage.stages }
    public var clock: any PipelineClock { storage.clock }
    /// The units around each command, outermost first (without the fallback, which
    /// `executeWithFallback` adds).
    package var units: [any ChainUnit<CommandRun, CommandOutcome>] { storage.units }

    // Behind one reference: an engine is copied into every task that runs a command, and
    // inline its dozen references were a dozen retains each time.
    private let storage: Storage

    private final class Storage: Sendable {
        let provider: any GenerationCapability
        let stages: [any ExecutionStage]
        let clock: any PipelineClock
        let units: [any ChainUnit<CommandRun, CommandOutcome>]
        let primaryChain: Chain<CommandRun, CommandOutcome>
        let fallbackChain: Chain<CommandRun, CommandOutcome>
        /// Deletes ephemeral files after success: the upload stage's resolver, when there is one.
        let files: FileResolver?

        init(provider: any GenerationCapability, stages: [any ExecutionStage], clock: any PipelineClock, units: [any ChainUnit<CommandRun, CommandOutcome>]) {
            self.provider = provider
            self.stages = stages
            self.clock = clock
            self.units = units
            let loop = StageLoop(stages: stages, provider: provider, clock: clock)
            // Closures that call the loop directly (a method reference would add a thunk's frame).
            primaryChain = Chain(units) { await loop.run($0) }
            fallbackChain = Chain(units + [FallbackUnit()]) { await loop.run($0) }
            files = stages.lazy.compactMap { ($0 as? UploadStage)?.resolver }.first
        }
    }

    /// An engine with the standard stages and chains and the default configuration.
    public init(provider: any GenerationCapability) {
        self.init(provider: provider, valid: EngineConfiguration())
    }

    /// An engine with the standard stages and chains, configured. A value out of its range
    /// (`EngineConfiguration.validate()`) is refused here with an error naming it.
    public init(provider: any GenerationCapability, configuration: EngineConfiguration) throws(ConfigurationError) {
        try configuration.validate()
        self.init(provider: provider, valid: configuration)
    }

    private init(provider: any GenerationCapability, valid configuration: EngineConfiguration) {
        let provider = configuration.router.map { RoutedProvider(router: $0, fallback: provider) } ?? provider
        let clock = configuration.clock
        // One retry layer for every request: generate calls, uploads and cache creation; a 429
        // on any of them pauses the engine's limiter.
        let jitter = configuration.jitterSource
        let retrier = Retrier(
            policy: configuration.retryPolicy, clock: clock, random: { jitter.pinned() }, pausing: configuration.rateLimiter())
        self.init(
            provider: provider,
            stages: [
                UploadStage(registry: FileRegistry(), resolver: configuration.files, retrier: retrier),
                CacheStage(registry: CacheRegistry(clock: clock), retrier: retrier),
                GenerateStage(
                    maxConcurrentCalls: configuration.maxConcurrentCalls, calls: configuration.callChain(retrier: retrier), clock: clock,
                    maxPause: configuration.retryPolicy.maxRetryAfter),
                TelemetryStage(),
            ],
            clock: clock, units: configuration.commandUnits(counting: provider.tokenCounting))
    }

    /// An engine with stages and command units of your choosing, run in the order given, and
    /// nothing else: no retries, hooks, sinks or deadlines unless `units` and the stages'
    /// call chains bring them. To add a stage to a configured engine and keep all of that, use
    /// `insertingStage(_:before:)`.
    package init(
        provider: any GenerationCapability, stages: [any ExecutionStage], clock: any PipelineClock = SystemClock(),
        units: [any ChainUnit<CommandRun, CommandOutcome>] = [ValidationUnit()]
    ) {
        storage = Storage(provider: provider, stages: stages, clock: clock, units: units)
    }

    /// This engine with `stage` run just before the stage named `before` (`"upload"`, `"cache"`,
    /// `"generate"`, `"telemetry"`: `stages.map(\.name)`), or after every stage when `before` is nil; everything else — the
    /// provider, the command units (sinks, hooks, deadline, validation, costs), the call chain
    /// of the generate stage (retries, rate limits, timeouts), the shared registries — is kept.
    /// A name that is not one of the engine's stages is an error naming the stages there are.
    public func insertingStage(_ stage: any ExecutionStage, before: String?) throws(ConfigurationError) -> PipelineEngine {
        var stages = self.stages
        if let before {
            guard let index = stages.firstIndex(where: { $0.name == before }) else {
                throw ConfigurationError(
                    field: "before",
                    message: "no stage '\(before)' to insert '\(stage.name)' before; the engine's stages are \(stages.map { "'\($0.name)'" }.joined(separator: ", "))")
            }
            stages.insert(stage, at: index)
        } else {
            stages.append(stage)
        }
        return PipelineEngine(provider: provider, stages: stages, clock: clock, units: units)
    }

    /// Runs the command's primary execution only.
    @inline(__always)
    public func execute(_ command: PlannedCommand) async -> Result<FinalizedCommand, APIError> {
        await run(command, fallback: false).result
    }

    /// Runs the command and, when the primary execution fails and the plan has a fallback
    /// call, runs that call once with the shared parts (already uploaded ones included) but no
    /// uploads of its own and no cache (seed 002 §7).
    @inline(__always)
    public func executeWithFallback(_ command: PlannedCommand) async -> Result<FinalizedCommand, APIError> {
        await run(command).result
    }

    /// Runs the command (with its fallback unless `fallback` is false) and returns everything
    /// it left: the result, and on failure the partial responses, failed calls and telemetry.
    /// - Parameters:
    ///   - index: the command's position in its input, carried by its events.
    ///   - streaming: ask a provider that can stream for text deltas.
    ///   - observer: sees every event as it is recorded, the terminal one last.
    @concurrent public func run(
        _ command: PlannedCommand, index: Int = 0, fallback: Bool = true, streaming: Bool = false,
        observer: (@Sendable (PipelineEvent) -> Void)? = nil
    ) async -> CommandOutcome {
        await run(command, validated: false, index: index, fallback: fallback, streaming: streaming, observer: observer)
    }

    /// `run(_:index:fallback:streaming:observer:)` for a command already validated (the CLI's
    /// decoder checks every command it reads): the validation unit does not check it again.
    @concurrent package func run(
        _ command: ValidatedCommand, index: Int = 0, fallback: Bool = true, streaming: Bool = false,
        observer: (@Sendable (PipelineEvent) -> Void)? = nil
    ) async -> CommandOutcome {
        await run(command.command, validated: true, index: index, fallback: fallback, streaming: streaming, observer: observer)
    }

    @inline(__always)
    private func run(
        _ command: PlannedCommand, validated: Bool, index: Int, fallback: Bool, streaming: Bool, observer: (@Sendable (PipelineEvent) -> Void)?
    ) async -> CommandOutcome {
        let log = EventLog(commandID: command.id, index: index, provider: provider.providerName, clock: clock, observer: observer)
        if log.isObserved { log.record(.commandStarted) }   // only readers see it
        var run = CommandRun(state: ExecutionState(command: command), log: log, streaming: streaming)
        run.commandIsValidated = validated
        let outcome = fallback ? await storage.fallbackChain(run) : await storage.primaryChain(run)
        removeEphemeralFiles(of: outcome)
        // The terminal event is for readers of the log; the fold has nothing to add from it.
        if log.keepsEvents { log.record(outcome.succeeded ? .commandSucceeded(outcome) : .commandFailed(outcome)) }
        return outcome
    }

    /// The command's events as they happen, text deltas included when the provider can
    /// stream, ending with exactly one `commandSucceeded` or `commandFailed`.
    ///
    /// The command starts when the sequence is first iterated and is cancelled as soon as its
    /// reader stops: a `break` or `return` out of the loop (the sequence may stay in scope), or
    /// the reading task cancelled. One reader: a second iterator (a second loop, a
    /// second task, a loop over a finished sequence) ends at once without an event
    /// (`CommandEvents`, the sequence's type inside the package).
    public func events(for command: PlannedCommand, index: Int = 0) -> some AsyncSequence<PipelineEvent, Never> & Sendable {
        CommandEvents { observer in _ = await run(command, index: index, streaming: true, observer: observer) }
    }

    /// Ephemeral uploads are deleted only when the command succeeded (a failed command keeps
    /// its files for the next try), and only inside an explicit files root.
    private func removeEphemeralFiles(of outcome: CommandOutcome) {
        guard outcome.succeeded, let files = storage.files else { return }
        for file in outcome.state.ephemeralFiles { _ = files.removeEphemeral(file) }
    }
}
