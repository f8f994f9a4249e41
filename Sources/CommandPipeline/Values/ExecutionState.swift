/// The immutable value that flows through the stages. Each stage reads a state and
/// returns a new one through the `with` transforms; the state it was given is never changed.
///
/// What happened on the way (uploads, caches, attempts, waits) is not kept here but in the
/// command's `EventLog`; the state holds only what later stages need to do their work.
public struct ExecutionState: Sendable, Hashable {
    private let commandBox: Box<PlannedCommand>
    public var command: PlannedCommand { commandBox.value }
    /// Shared parts, with placeholders replaced by references once uploaded.
    public private(set) var sharedParts: [APIPart]
    /// The calls to run, with their parts resolved the same way.
    public private(set) var calls: [APICall]
    /// Where call `i` sits in the command, for errors: `plan.calls[i]`, or the fallback call's path.
    public let callPaths: CallPaths
    /// The cache the calls use, once the cache stage has one.
    public private(set) var cache: CacheReference?
    /// Responses in call order, once generated.
    public private(set) var responses: [CallResponse]
    /// Set by the telemetry stage: the fold of the command's log.
    public private(set) var summary: LogSummary?
    /// Uploaded files marked ephemeral: the engine deletes them once the command has succeeded.
    public private(set) var ephemeralFiles: [OpenedFile]

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
        self.commandBox = Box(command)
        self.sharedParts = sharedParts
        self.calls = calls
        self.callPaths = callPaths
        self.cache = nil
        self.responses = []
        self.summary = nil
        self.ephemeralFiles = []
    }

    public var plan: ExecutionPlan { command.plan }

    /// The state for the plan's fallback `call`: this state's shared parts (uploads done
    /// stay done) and ephemeral files, no cache, no responses.
    public func forFallback(_ call: APICall) -> ExecutionState {
        var next = ExecutionState(command: command, sharedParts: sharedParts, calls: [call], callPaths: .single("plan.fallback_call"))
        next.ephemeralFiles = ephemeralFiles
        return next
    }

    public static func == (lhs: ExecutionState, rhs: ExecutionState) -> Bool {
        (lhs.commandBox === rhs.commandBox || lhs.command == rhs.command) && lhs.callPaths == rhs.callPaths
            && lhs.sharedParts == rhs.sharedParts && lhs.calls == rhs.calls && lhs.cache == rhs.cache
            && lhs.responses == rhs.responses
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
        var copy = self
        copy.sharedParts = sharedParts
        copy.calls = calls
        copy.ephemeralFiles = ephemeralFiles
        return copy
    }

    public func with(cache: CacheReference?) -> ExecutionState {
        var copy = self
        copy.cache = cache
        return copy
    }

    public func with(responses: [CallResponse]) -> ExecutionState {
        var copy = self
        copy.responses = responses
        return copy
    }

    public func with(summary: LogSummary) -> ExecutionState {
        var copy = self
        copy.summary = summary
        return copy
    }
}
