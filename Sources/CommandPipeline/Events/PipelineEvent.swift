/// One step of one command, as it happened. Every command records these into its
/// `EventLog`; telemetry is a fold over them, and `PipelineEngine.events(for:)` and the CLI's
/// `--events` mode hand them to users as they happen.
///
/// `seq` starts at 0 with `commandStarted` and grows by one per event of the command; the
/// last event is always exactly one `commandSucceeded` or `commandFailed`.
public struct PipelineEvent: Sendable {
    /// The command's id.
    public var commandID: String
    /// The command's position in its input (0 when run alone).
    public var index: Int
    public var seq: Int
    /// Time since the command started.
    public var elapsed: Duration
    public var kind: Kind

    public init(commandID: String, index: Int, seq: Int, elapsed: Duration, kind: Kind) {
        self.commandID = commandID
        self.index = index
        self.seq = seq
        self.elapsed = elapsed
        self.kind = kind
    }

    public enum Kind: Sendable {
        case commandStarted
        /// A stage that applies begins (`upload`, `cache`, `generate`, `telemetry`, or a custom stage's name).
        case stageStarted(String)
        case stageFinished(String, duration: Duration)
        /// A file was uploaded by this command.
        case uploadPerformed(path: String, uri: String)
        /// A file uploaded earlier (by this engine) was used again.
        case uploadReused(path: String, uri: String)
        /// A placeholder stayed a placeholder: the provider cannot upload and the upload was optional.
        case uploadSkipped(path: String)
        indirect case cacheCreated(CacheTelemetry)
        indirect case cacheReused(CacheTelemetry)
        /// The plan asked for a cache and the command runs without one (`reason` says why, when known).
        indirect case cacheSkipped(CacheTelemetry)
        /// An attempt of call `call` (1-based `attempt`) is sent; `cached` when it uses the cache.
        case attemptStarted(call: Int, attempt: Int, model: String, cached: Bool)
        indirect case attemptFailed(call: Int, attempt: Int, error: APIError, willRetry: Bool)
        /// The call waits before going on: `reason` is `backoff` (between attempts), `rate_limit`
        /// or `deployment` (a router's: every deployment of the model cooling, held, full or at
        /// its own limit), as on the wire.
        case waiting(call: Int, reason: String, duration: Duration)
        /// A call that used the cache failed and is tried once more with the shared parts themselves.
        case cacheBypassed(call: Int)
        /// What the response cache did for call `call` (`ResponseCacheUnit`): `hit` (answered with
        /// no request), `miss` (about to be sent), `stored` (its answer kept). Wire type
        /// `response_cache_<status>`.
        case responseCache(call: Int, status: String)
        /// A router sent this attempt of call `call` to `deployment`, as `model` on `provider`.
        case attemptRouted(call: Int, deployment: String, provider: String, model: String)
        /// This attempt's failure opened `deployment`'s circuit breaker for `cooldown`.
        case deploymentOpened(deployment: String, cooldown: Duration)
        /// This attempt, the half-open probe, closed `deployment`'s breaker after `openFor`.
        case deploymentClosed(deployment: String, openFor: Duration)
        /// A piece of a call's answer, as it streams. A call's deltas concatenated are its final text.
        case textDelta(call: Int, text: String)
        /// A tool call of a call's answer, whole (streamed arguments joined), as the provider gave
        /// it: checked against its tool only with the answer (`attempt_failed` `invalid_output` if not).
        indirect case toolCall(call: Int, ToolCall)
        /// (Indirect, like the other large payloads: the event stays some 40 bytes, and every
        /// switch over it copies it.)
        indirect case callFinished(CallResponse)
        indirect case callFailed(call: Int, error: APIError)
        /// The primary execution failed; the plan's fallback call runs now.
        indirect case fallbackStarted(model: String, primaryError: APIError)
        indirect case commandSucceeded(CommandOutcome)
        indirect case commandFailed(CommandOutcome)
    }

    /// The reasons of `Kind.waiting`.
    package enum WaitReason: String, Sendable, Hashable {
        case backoff
        case rateLimit = "rate_limit"
        /// A router's: every deployment of the model cooling, held, full or at its own limit.
        case deployment
    }

    /// The type's name on the wire (`command_started`, `text_delta`, …).
    public var type: String { kind.type }

    /// Whether this is the command's last event.
    public var isTerminal: Bool {
        switch kind {
        case .commandSucceeded, .commandFailed: true
        default: false
        }
    }
}

extension PipelineEvent.Kind {
    /// Wire names, in the order a command usually meets them.
    public static let types = [
        "command_started", "stage_started", "stage_finished", "upload_performed", "upload_reused", "upload_skipped",
        "cache_created", "cache_reused", "cache_skipped", "attempt_started", "attempt_failed", "waiting", "cache_bypassed",
        "response_cache_hit", "response_cache_miss", "response_cache_stored", "attempt_routed", "deployment_opened", "deployment_closed", "text_delta", "tool_call", "call_finished", "call_failed", "fallback_started", "command_succeeded", "command_failed",
    ]

    public var type: String {
        switch self {
        case .commandStarted: "command_started"
        case .stageStarted: "stage_started"
        case .stageFinished: "stage_finished"
        case .uploadPerformed: "upload_performed"
        case .uploadReused: "upload_reused"
        case .uploadSkipped: "upload_skipped"
        case .cacheCreated: "cache_created"
        case .cacheReused: "cache_reused"
        case .cacheSkipped: "cache_skipped"
        case .attemptStarted: "attempt_started"
        case .attemptFailed: "attempt_failed"
        case .waiting: "waiting"
        case .cacheBypassed: "cache_bypassed"
        case .responseCache(_, let status):
            switch ResponseCacheStatus(rawValue: status) {
            case .hit?: "response_cache_hit"
            case .miss?: "response_cache_miss"
            case .stored?: "response_cache_stored"
            case nil: "response_cache"
            }
        case .attemptRouted: "attempt_routed"
        case .deploymentOpened: "deployment_opened"
        case .deploymentClosed: "deployment_closed"
        case .textDelta: "text_delta"
        case .toolCall: "tool_call"
        case .callFinished: "call_finished"
        case .callFailed: "call_failed"
        case .fallbackStarted: "fallback_started"
        case .commandSucceeded: "command_succeeded"
        case .commandFailed: "command_failed"
        }
    }
}
