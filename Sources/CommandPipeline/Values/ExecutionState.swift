/// The immutable value that flows through the stages. Each stage reads a state and
/// returns a new one through the `with` transforms; the state it was given is never changed.
public struct ExecutionState: Sendable, Hashable {
    /// Which execution of the command this is.
    public enum Mode: Sendable, Hashable {
        case primary
        /// The plan's fallback call: no uploads of its own, no cache.
        case fallback
    }

    private let commandBox: Box<PlannedCommand>
    public var command: PlannedCommand { commandBox.value }
    public let mode: Mode
    /// Shared parts, with placeholders replaced by references once uploaded.
    public private(set) var sharedParts: [APIPart]
    /// The calls to run, with their parts resolved the same way.
    public private(set) var calls: [APICall]
    /// The cache the calls use, once the cache stage has one.
    public private(set) var cache: CacheReference?
    /// Responses in call order, once generated.
    public private(set) var responses: [CallResponse]
    /// What the upload stage did.
    public private(set) var uploads: UploadCounts
    /// What the cache stage did.
    public private(set) var cacheTelemetry: CacheTelemetry?
    /// Total usage over `responses`, set by the telemetry stage.
    public private(set) var usage: Usage
    /// Set by the telemetry stage when the command has an estimate.
    public private(set) var tokenValidation: TokenValidation?
    /// Attempts, waits and cache bypasses of each call, once generated.
    public private(set) var callTelemetry: [CallTelemetry]
    /// Uploaded files marked ephemeral: the engine deletes them once the command has succeeded.
    public private(set) var ephemeralFiles: [OpenedFile]

    /// Attempts beyond the first, over all calls.
    public var retries: Int { callTelemetry.reduce(0) { $0 + $1.retries } }

    /// The state a command starts from.
    public init(command: PlannedCommand) {
        self.init(command: command, mode: .primary, sharedParts: command.plan.sharedParts, calls: command.plan.calls)
    }

    /// A state for any mode and parts, e.g. the fallback call over already-uploaded shared parts.
    public init(command: PlannedCommand, mode: Mode, sharedParts: [APIPart], calls: [APICall]) {
        self.commandBox = Box(command)
        self.mode = mode
        self.sharedParts = sharedParts
        self.calls = calls
        self.cache = nil
        self.responses = []
        self.uploads = UploadCounts()
        self.cacheTelemetry = nil
        self.usage = .zero
        self.tokenValidation = nil
        self.callTelemetry = []
        self.ephemeralFiles = []
    }

    public var plan: ExecutionPlan { command.plan }

    public static func == (lhs: ExecutionState, rhs: ExecutionState) -> Bool {
        (lhs.commandBox === rhs.commandBox || lhs.command == rhs.command) && lhs.mode == rhs.mode
            && lhs.sharedParts == rhs.sharedParts && lhs.calls == rhs.calls && lhs.cache == rhs.cache
            && lhs.responses == rhs.responses && lhs.uploads == rhs.uploads && lhs.cacheTelemetry == rhs.cacheTelemetry
            && lhs.usage == rhs.usage && lhs.tokenValidation == rhs.tokenValidation && lhs.callTelemetry == rhs.callTelemetry
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(command)
        hasher.combine(mode)
        hasher.combine(sharedParts)
        hasher.combine(calls)
        hasher.combine(responses)
    }

    /// The parts a call sends: the shared parts first, then its own.
    public func effectiveParts(ofCall index: Int) -> [APIPart] {
        sharedParts + calls[index].parts
    }

    public func with(sharedParts: [APIPart], calls: [APICall], uploads: UploadCounts, ephemeralFiles: [OpenedFile] = []) -> ExecutionState {
        var copy = self
        copy.sharedParts = sharedParts
        copy.calls = calls
        copy.uploads = uploads
        copy.ephemeralFiles = ephemeralFiles
        return copy
    }

    public func with(cache: CacheReference?, telemetry: CacheTelemetry?) -> ExecutionState {
        var copy = self
        copy.cache = cache
        copy.cacheTelemetry = telemetry
        return copy
    }

    public func with(responses: [CallResponse], calls: [CallTelemetry]) -> ExecutionState {
        var copy = self
        copy.responses = responses
        copy.callTelemetry = calls
        return copy
    }

    public func with(usage: Usage, tokenValidation: TokenValidation?) -> ExecutionState {
        var copy = self
        copy.usage = usage
        copy.tokenValidation = tokenValidation
        return copy
    }
}
