/// The immutable value that flows through the stages. Each stage reads a state and
/// returns a new one through the `with` transforms; the state it was given is never changed.
///
/// What happened on the way (uploads, caches, attempts, waits) is not kept here but in the
/// command's `EventLog`; the state holds only what later stages need to do their work.
public struct ExecutionState: Sendable, Hashable {
    /// Every field in one box: a state is copied at every stage and call, and one reference
    /// is cheaper to copy than nine fields; each transform makes a new box.
    private struct Storage: Sendable {
        /// Boxed once for every state of the command: a transform copies one reference.
        let command: Box<PlannedCommand>
        var sharedParts: [APIPart]
        var calls: [APICall]
        var callPaths: CallPaths
        var cache: CacheReference?
        var responses: [CallResponse]
        var summary: LogSummary?
        var ephemeralFiles: [OpenedFile]
    }

    private var storage: Box<Storage>

    public var command: PlannedCommand { _read { yield storage.value.command.value } }
    /// Shared parts, with placeholders replaced by references once uploaded.
    public var sharedParts: [APIPart] { _read { yield storage.value.sharedParts } }
    /// The calls to run, with their parts resolved the same way.
    public var calls: [APICall] { _read { yield storage.value.calls } }
    /// Where call `i` sits in the command, for errors: `plan.calls[i]`, or the fallback call's path.
    public var callPaths: CallPaths { _read { yield storage.value.callPaths } }
    /// The cache the calls use, once the cache stage has one.
    public var cache: CacheReference? { _read { yield storage.value.cache } }
    /// Responses in call order, once generated.
    public var responses: [CallResponse] { _read { yield storage.value.responses } }
    /// Set by the telemetry stage: the fold of the command's log.
    public var summary: LogSummary? { _read { yield storage.value.summary } }
    /// Uploaded files marked ephemeral: the engine deletes them once the command has succeeded.
    public var ephemeralFiles: [OpenedFile] { _read { yield storage.value.ephemeralFiles } }

    /// How the calls of a state are named in errors.
    public enum CallPaths: Sendable, Hashable {
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
    public init(command: PlannedCommand, sharedParts: [APIPart], calls: [APICall], callPaths: CallPaths = .planCalls) {
        storage = Box(Storage(
            command: Box(command), sharedParts: sharedParts, calls: calls, callPaths: callPaths, cache: nil, responses: [], summary: nil, ephemeralFiles: []))
    }

    public var plan: ExecutionPlan { command.plan }

    private func with(_ change: (inout Storage) -> Void) -> ExecutionState {
        var value = storage.value
        change(&value)
        var copy = self
        copy.storage = Box(value)
        return copy
    }

    /// The state for the plan's fallback `call`: this state's shared parts (uploads done
    /// stay done) and ephemeral files, no cache, no responses.
    public func forFallback(_ call: APICall) -> ExecutionState {
        let files = ephemeralFiles
        return ExecutionState(command: command, sharedParts: sharedParts, calls: [call], callPaths: .single("plan.fallback_call"))
            .with { $0.ephemeralFiles = files }
    }

    public static func == (lhs: ExecutionState, rhs: ExecutionState) -> Bool {
        if lhs.storage === rhs.storage { return true }
        return lhs.command == rhs.command && lhs.callPaths == rhs.callPaths && lhs.sharedParts == rhs.sharedParts && lhs.calls == rhs.calls
            && lhs.cache == rhs.cache && lhs.responses == rhs.responses
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

    public func with(sharedParts: [APIPart], calls: [APICall], ephemeralFiles: [OpenedFile] = []) -> ExecutionState {
        with {
            $0.sharedParts = sharedParts
            $0.calls = calls
            $0.ephemeralFiles = ephemeralFiles
        }
    }

    public func with(cache: CacheReference?) -> ExecutionState { with { $0.cache = cache } }

    public func with(responses: [CallResponse]) -> ExecutionState { with { $0.responses = responses } }

    public func with(summary: LogSummary) -> ExecutionState { with { $0.summary = summary } }
}
