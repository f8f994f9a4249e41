/// The immutable value that flows through the stages. Each stage reads a state and
/// returns a new one through the `with` transforms; the state it was given is never changed.
///
/// What happened on the way (uploads, caches, attempts, waits) is not kept here but in the
/// command's `EventLog`; the state holds only what later stages need to do their work.
public struct ExecutionState: Sendable, Hashable {
    /// What the upload stage and the fallback set: the command and the parts its calls send.
    private struct Base: Sendable {
        let command: PlannedCommand
        var sharedParts: [APIPart]
        var calls: [APICall]
        var callPaths: CallPaths
        var ephemeralFiles: [OpenedFile]
        /// The cache the calls may use: the plan's, until a unit or the fallback drops it.
        var cachePlan: CachePlan?
        /// Whether placeholders may still be uploaded (not in the fallback's execution).
        var uploads = true
    }

    /// What the later stages add, one reference each: the cache (boxed: it is large and most
    /// commands have none), the responses, the summary.
    private struct Progress: Sendable {
        var cache: Box<CacheReference>?
        var responses: [CallResponse] = []
        var summary: Box<LogSummary>?
    }

    /// The base behind one reference, the progress inline: a state is copied at every stage and
    /// call, and a transform copies only the part it changes (a single box of every field made
    /// each transform retain and release a dozen fields; a box for the progress was one more
    /// allocation per stage that adds something).
    private var base: Box<Base>
    private var progress = Progress()

    public var command: PlannedCommand { _read { yield base.value.command } }
    /// Shared parts, with placeholders replaced by references once uploaded.
    public var sharedParts: [APIPart] { _read { yield base.value.sharedParts } }
    /// The calls to run, with their parts resolved the same way.
    public var calls: [APICall] { _read { yield base.value.calls } }
    /// Where call `i` sits in the command, for errors: `plan.calls[i]`, or the fallback call's path.
    package var callPaths: CallPaths { _read { yield base.value.callPaths } }
    /// The cache the calls use, once the cache stage has one.
    public var cache: CacheReference? { progress.cache?.value }
    /// Whether there is one (without copying it).
    var hasCache: Bool { progress.cache.isPresent }
    /// Responses in call order, once generated.
    public var responses: [CallResponse] { _read { yield progress.responses } }
    /// Set by the telemetry stage: the fold of the command's log.
    public var summary: LogSummary? { progress.summary?.value }
    /// The summary's usage and telemetry, read in the box (a copy of the whole summary retained
    /// and released each of its fields).
    var summaryTotals: (usage: Usage, telemetry: Telemetry)? {
        guard let box = progress.summary else { return nil }
        return (box.value.usage, box.value.telemetry)
    }
    /// The cache the plan asks for, unless dropped (`withoutCache()`, the fallback): the cache
    /// stage applies only with one.
    public var cachePlan: CachePlan? { base.value.cachePlan }
    /// Whether file placeholders may be uploaded: not in the fallback's execution, which uses
    /// the primary's uploads and makes none of its own. The upload stage applies only then.
    public var allowsUploads: Bool { base.value.uploads }
    /// Uploaded files marked ephemeral: the engine deletes them once the command has succeeded.
    package var ephemeralFiles: [OpenedFile] { _read { yield base.value.ephemeralFiles } }

    /// How the calls of a state are named in errors.
    package enum CallPaths: Sendable, Hashable {
        /// `plan.calls[i]`.
        case planCalls
        /// One call at a fixed path (`plan.fallback_call`).
        case single(String)

        public func path(_ index: Int) -> String {
            switch self {
            case .planCalls: "plan.calls[\(index)]"
            case .single(let path): path
            }
        }
    }

    /// The state a command starts from.
    public init(command: PlannedCommand) {
        self.init(command: command, sharedParts: command.plan.sharedParts, calls: command.plan.calls)
    }

    /// A state over any parts and calls.
    package init(command: PlannedCommand, sharedParts: [APIPart], calls: [APICall], callPaths: CallPaths = .planCalls) {
        base = Box(Base(command: command, sharedParts: sharedParts, calls: calls, callPaths: callPaths, ephemeralFiles: [], cachePlan: command.plan.cache))
    }

    public var plan: ExecutionPlan { command.plan }

    private func with(base change: (inout Base) -> Void) -> ExecutionState {
        var value = base.value
        change(&value)
        var copy = self
        copy.base = Box(value)
        return copy
    }

    private func with(progress change: (inout Progress) -> Void) -> ExecutionState {
        var copy = self
        change(&copy.progress)
        return copy
    }

    /// The state for the plan's fallback `call`: this state's shared parts (uploads done
    /// stay done) and ephemeral files, no uploads of its own, no cache, no responses.
    public func forFallback(_ call: APICall) -> ExecutionState {
        let files = ephemeralFiles
        return ExecutionState(command: command, sharedParts: sharedParts, calls: [call], callPaths: .single("plan.fallback_call"))
            .with(base: {
                $0.ephemeralFiles = files
                $0.cachePlan = nil
                $0.uploads = false
            })
    }

    /// The same state, run without the cache its plan asks for (e.g. a context below the
    /// model's minimum cache size, `PreflightUnit`).
    public func withoutCache() -> ExecutionState { with(base: { $0.cachePlan = nil }) }

    public static func == (lhs: ExecutionState, rhs: ExecutionState) -> Bool {
        if lhs.base === rhs.base { return lhs.cache == rhs.cache && lhs.responses == rhs.responses }
        return lhs.command == rhs.command && lhs.callPaths == rhs.callPaths && lhs.sharedParts == rhs.sharedParts && lhs.calls == rhs.calls
            && lhs.cachePlan == rhs.cachePlan && lhs.allowsUploads == rhs.allowsUploads && lhs.cache == rhs.cache && lhs.responses == rhs.responses
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(command)
        hasher.combine(sharedParts)
        hasher.combine(calls)
        hasher.combine(responses)
    }

    /// The parts a call sends: the shared parts first, then its own.
    public func effectiveParts(ofCall index: Int) -> [APIPart] {
        sharedParts + calls[index].parts
    }

    public func with(sharedParts: [APIPart], calls: [APICall]) -> ExecutionState {
        with(sharedParts: sharedParts, calls: calls, ephemeralFiles: [])
    }

    package func with(sharedParts: [APIPart], calls: [APICall], ephemeralFiles: [OpenedFile]) -> ExecutionState {
        with(base: {
            $0.sharedParts = sharedParts
            $0.calls = calls
            $0.ephemeralFiles = ephemeralFiles
        })
    }

    public func with(cache: CacheReference?) -> ExecutionState { with(progress: { $0.cache = cache.map(Box.init) }) }

    public func with(responses: [CallResponse]) -> ExecutionState { with(progress: { $0.responses = responses }) }

    public func with(summary: LogSummary) -> ExecutionState { with(progress: { $0.summary = Box(summary) }) }
}
