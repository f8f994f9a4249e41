import Synchronization

/// Code that runs around each command (seed 000's handler hooks): before it (validate, enrich,
/// reject), after it (metrics, audit) and on error, and while its answer streams. Every method
/// has a default that does nothing, so a hook implements only what it needs.
///
/// Hooks run in the order they are registered (`EngineConfiguration.hooks`), as a unit of the
/// command chain (`HookUnit`), outside the deadline and the validation:
///
/// - `beforeCommand` returns the command to run (the same, or enriched); the next hook gets what
///   this one returned, and the engine validates the last. Throwing rejects the command: it
///   fails at once, with an error naming the hook, and nothing is uploaded or called.
/// - `afterSuccess` / `onError` see how the command ended. A hook that throws here changes
///   nothing: the result stays as it was, and the failure is recorded in the command's
///   telemetry (`hook_failures`) and reported (the CLI prints it on stderr).
/// - `streamStarted`, `streamChunk`, `streamEnded` follow each call whose answer streams (events
///   mode, `engine.events(for:)`). They are called on the task that receives the answer, in
///   order for each call: keep them short, they cannot fail the command.
/// - `event` sees the command's call events as they are recorded (attempts, failures, waits,
///   deltas, finished and failed calls, the fallback): what a metrics collector reads.
public protocol CommandHook: Sendable {
    /// How failures and rejections name the hook.
    var name: String { get }
    func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand
    func afterSuccess(_ result: FinalizedCommand, context: HookContext) async throws
    func onError(_ error: APIError, context: HookContext) async throws
    func streamStarted(call: Int, context: HookContext)
    func streamChunk(_ text: String, call: Int, context: HookContext)
    func streamEnded(call: Int, context: HookContext)
    func event(_ event: PipelineEvent.Kind, context: HookContext)
}

extension CommandHook {
    public func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand { command }
    public func afterSuccess(_ result: FinalizedCommand, context: HookContext) async throws {}
    public func onError(_ error: APIError, context: HookContext) async throws {}
    public func streamStarted(call: Int, context: HookContext) {}
    public func streamChunk(_ text: String, call: Int, context: HookContext) {}
    public func streamEnded(call: Int, context: HookContext) {}
    public func event(_ event: PipelineEvent.Kind, context: HookContext) {}
}

/// What every hook method of one command receives: which command, how long it has run, and a
/// scratch space shared by the command's hooks (one hook can leave a value for another, or for
/// itself in a later phase). A new context, and a new scratch space, for each command.
public struct HookContext: Sendable {
    public let commandID: String
    /// The command's position in its input.
    public let index: Int
    /// The provider the command runs on.
    public let provider: String
    /// The scratch space (`context[scratch:]`, `updateScratch`).
    package let scratch: HookScratch
    // The clock and the start, not the log: the log keeps its readers (which hold contexts),
    // and a context holding the log would keep every command's log alive.
    private let clock: any PipelineClock
    private let start: Duration

    init(log: EventLog, commandID: String) {
        self.commandID = commandID
        index = log.index
        provider = log.provider
        scratch = HookScratch()
        clock = log.clock
        start = log.start
    }

    /// Time since the command started, on the engine's clock.
    public var elapsed: Duration { clock.now - start }

    /// The value the command's hooks left under `key` in their shared scratch space (thread-safe:
    /// stream hooks of a fan-out's calls may use it at the same time).
    public subscript(scratch key: String) -> (any Sendable)? {
        get { scratch[key] }
        nonmutating set { scratch[key] = newValue }
    }

    /// Changes the scratch value under `key` atomically (e.g. a counter several calls add to).
    public func updateScratch<T: Sendable>(_ key: String, default value: T, _ change: (inout T) -> Void) {
        scratch.update(key, default: value, change)
    }
}

/// Values the hooks of one command share, by name. Thread-safe: stream hooks of a fan-out's
/// calls may use it at the same time.
package final class HookScratch: Sendable {
    private let values = Mutex<[String: any Sendable]>([:])

    public subscript(key: String) -> (any Sendable)? {
        get { values.withLock { $0[key] } }
        set { values.withLock { $0[key] = newValue } }
    }

    /// Changes the value under `key` atomically (e.g. a counter several calls add to).
    public func update<T: Sendable>(_ key: String, default value: T, _ change: (inout T) -> Void) {
        values.withLock { values in
            var current = values[key] as? T ?? value
            change(&current)
            values[key] = current
        }
    }
}

/// A hook that failed after its command had ended: recorded in `Telemetry.hookFailures`,
/// never in the result itself.
package struct HookFailure: Sendable, Hashable {
    package enum Phase: String, Sendable, Hashable {
        case afterSuccess = "after_success"
        case onError = "on_error"
    }

    /// The most characters of a hook's error text kept, in a failure or a rejection: a hook's
    /// text is not bounded by anything else, and it reaches every result and stderr line.
    public static let messageLimit = 1_000

    public var hook: String
    public var phase: Phase
    public var message: String

    /// `message` is cut to `messageLimit` characters (with `…` when cut).
    public init(hook: String, phase: Phase, message: String) {
        self.hook = hook
        self.phase = phase
        self.message = Self.limited(message)
    }

    /// `text` cut to `messageLimit` characters, with `…` when cut.
    public static func limited(_ text: String) -> String {
        guard text.count > messageLimit else { return text }
        return String(text.prefix(messageLimit)) + "…"
    }
}
