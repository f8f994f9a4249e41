/// What a command's event log adds up to: its telemetry, its usage, and what a failure
/// leaves behind. Made by the log's fold (`LogFold.summary`), as of when it was asked for: the
/// telemetry stage reads it for a success, the engine for a failure.
public struct LogSummary: Sendable {
    public var telemetry: Telemetry
    /// Usage of the responses of the last execution (the primary's, or the fallback's).
    public var usage: Usage
    /// Responses of calls that finished in the primary execution, then text delivered by
    /// calls whose stream broke (`finish_reason` `interrupted`). Filled for a failure only.
    public var partialResponses: [CallResponse]
    /// Calls of the primary execution that failed.
    public var failedCalls: [Int]

    /// Folds `entries` in order (events a log kept), then sums them up.
    package init(_ entries: [EventLog.Entry], provider: String, total: Duration, estimate: TokenEstimate? = nil, partials: Bool = false) {
        var fold = LogFold(provider: provider)
        for entry in entries { fold.add(entry.kind) }
        self = fold.summary(total: total, estimate: estimate, partials: partials)
    }

    fileprivate init(telemetry: Telemetry, usage: Usage, partialResponses: [CallResponse], failedCalls: [Int]) {
        self.telemetry = telemetry
        self.usage = usage
        self.partialResponses = partialResponses
        self.failedCalls = failedCalls
    }
}

/// The fold of a command's events: `add` is its step, and the log applies it to every event as
/// it is recorded; `summary` is what the events folded so far add up to. This is the only place
/// telemetry is computed. The fold stays in its log: a summary is made from it, never a copy of
/// it (a copy retained and released each of its fields, and the next event folded copied the
/// parts it changed).
package struct LogFold: Sendable {
    private var phase = 0
    private var calls = CallTable()
    /// Responses of the current execution, and of the primary once a fallback started.
    private var finished: [CallResponse] = []
    private var primaryFinished: [CallResponse]?
    /// Calls of the primary execution that failed, in the order they failed.
    private var failedCalls: [Int] = []
    /// Text of streams not (yet) finished: (phase, call, model, text).
    private var streams: [(phase: Int, call: Int, model: String, text: String)] = []
    /// The telemetry's parts as the events add them up.
    private var running: RunningTelemetry

    /// The telemetry's parts, plain fields while the fold goes on; a `Telemetry` (one
    /// copy-on-write reference) is made for each summary. Folding into a `Telemetry` made one
    /// when the log was opened and copied it whole at the first event after a summary was handed
    /// out (the telemetry stage's own `stage_finished`): two allocations and a 520-byte copy per
    /// command (`PipelineBench --scenario parts`, 2026-12-07). The large, rare parts are boxed.
    private struct RunningTelemetry: Sendable {
        var provider: String
        var usedFallback = false
        var primaryError = BoxedOptional<ErrorSummary>(nil)
        var durations = StageDurations()
        var uploads = UploadCounts()
        var cache = BoxedOptional<CacheTelemetry>(nil)
        var billedAttempts: [BilledAttempt] = []

        func telemetry(calls: [CallTelemetry], total: Duration, tokenValidation: TokenValidation?) -> Telemetry {
            var durations = durations
            durations.total = total
            var telemetry = Telemetry(
                provider: provider, usedFallback: usedFallback, primaryError: primaryError.value, calls: calls, durations: durations, uploads: uploads,
                cache: cache.value, tokenValidation: tokenValidation)
            if !billedAttempts.isEmpty { telemetry.billedAttempts = billedAttempts }
            return telemetry
        }
    }

    /// The fold of no event.
    package init(provider: String) {
        running = RunningTelemetry(provider: provider)
    }

    /// The fold's step.
    package mutating func add(_ kind: PipelineEvent.Kind) {
        switch kind {
        case .stageFinished(let name, let duration): stageFinished(name, duration)
        case .uploadPerformed: running.uploads.performed += 1
        case .uploadReused: running.uploads.reused += 1
        case .uploadSkipped: running.uploads.skipped += 1
        case .cacheCreated(let cache), .cacheReused(let cache), .cacheSkipped(let cache): running.cache.value = cache
        case .attemptStarted(let call, _, let model, _): attemptStarted(call: call, model: model)
        case .waiting(let call, _, let duration): calls.update(phase: phase, call: call) { $0.retryWait += duration }
        case .cacheBypassed(let call): calls.update(phase: phase, call: call) { $0.cacheBypassed = true }
        case .responseCache(let call, let status): calls.update(phase: phase, call: call) { $0.responseCache = ResponseCacheStatus(rawValue: status) }
        case .textDelta(let call, let text):
            if let i = streams.lastIndex(where: { $0.phase == phase && $0.call == call }) {
                streams[i].text += text
            } else {
                streams.append((phase, call, calls.model(phase: phase, call: call), text))
            }
        case .toolCall: break  // the call's response carries its tool calls
        case .callFinished(let response): callFinished(response)
        case .callFailed(let call, _): if phase == 0 { failedCalls.append(call) }
        case .attemptFailed(let call, let attempt, let error, let willRetry):
            if error.kind == .invalidOutput && willRetry {
                calls.update(phase: phase, call: call) { $0.repairs += 1 }
                // The rejected answer's streamed text is not part of the call's answer.
                if !streams.isEmpty { streams.removeAll { $0.phase == phase && $0.call == call } }
            }
            if Self.sentNothing(error) {
                // Refused while the request was being built (a part or option the provider cannot
                // take): nothing reached the server, so it was no attempt.
                calls.update(phase: phase, call: call) { $0.attempts = max(0, $0.attempts - 1) }
            }
            if let usage = error.billedUsage {
                running.billedAttempts.append(BilledAttempt(callIndex: call, attempt: attempt, model: calls.model(phase: phase, call: call), usage: usage))
            }
        case .fallbackStarted(_, let primaryError):
            running.usedFallback = true
            running.primaryError.value = primaryError.summary
            if primaryFinished == nil { primaryFinished = finished }
            finished = []
            phase += 1
        case .commandStarted, .stageStarted, .commandSucceeded, .commandFailed, .attemptRouted, .deploymentOpened, .deploymentClosed: break
        }
    }

    private mutating func stageFinished(_ name: String, _ duration: Duration) {
        running.durations.add(duration, to: name)
    }

    private mutating func attemptStarted(call: Int, model: String) {
        calls.update(phase: phase, call: call, model: model) { $0.attempts += 1 }
    }

    private mutating func callFinished(_ response: CallResponse) {
        finished.append(response)
        if !streams.isEmpty { streams.removeAll { $0.phase == phase && $0.call == response.callIndex } }
    }

    /// Whether `add` does anything with `kind`: an event nobody else reads and the fold ignores
    /// is not even numbered into the log (`EventLog.record`). Every kind is listed, no
    /// `default`: a new kind must be decided here and in `add`.
    static func folds(_ kind: PipelineEvent.Kind) -> Bool {
        switch kind {
        case .commandStarted, .stageStarted, .commandSucceeded, .commandFailed, .attemptRouted, .deploymentOpened, .deploymentClosed: false
        // The call's response carries its tool calls; the event is for readers of the log.
        case .toolCall: false
        // A failed attempt matters to the telemetry only when its answer was billed or re-asked.
        case .attemptFailed(_, _, let error, _): error.billedUsage != nil || error.kind == .invalidOutput || sentNothing(error)
        case .stageFinished, .uploadPerformed, .uploadReused, .uploadSkipped, .cacheCreated, .cacheReused, .cacheSkipped, .attemptStarted,
            .waiting, .cacheBypassed, .responseCache, .textDelta, .callFinished, .callFailed, .fallbackStarted:
            true
        }
    }

    /// Whether an attempt that failed with `error` sent nothing: `capability_missing` and
    /// `invalid_command` are raised by the engine and the adapters' request builders before any
    /// byte goes out (no server answer maps to them), so the attempt is not counted
    /// (`telemetry.calls[i].attempts` is 0 for a call refused that way).
    static func sentNothing(_ error: APIError) -> Bool { error.kind == .capabilityMissing || error.kind == .invalidCommand }

    /// Attempts of call `call` in the current execution.
    func attempts(call: Int) -> Int { calls.attempts(phase: phase, call: call) }

    /// What the events folded so far add up to, with the command's total time, the token
    /// validation (given an estimate) and, with `partials`, what a failure leaves.
    package func summary(total: Duration, estimate: TokenEstimate?, partials: Bool = false) -> LogSummary {
        let usage = finished.reduce(Usage.zero) { $0 + $1.usage }
        // A call whose usage was not reported leaves no actual count to check the estimate against.
        let validation = estimate.flatMap { usage.isReported ? TokenValidation(estimate: $0, actual: usage.totalTokens) : nil }
        let telemetry = running.telemetry(calls: calls.inCallOrder, total: total, tokenValidation: validation)
        let failedCalls = failedCalls.count > 1 ? failedCalls.sorted() : failedCalls
        guard partials else { return LogSummary(telemetry: telemetry, usage: usage, partialResponses: [], failedCalls: failedCalls) }
        let partialResponses = (primaryFinished ?? finished).sorted { $0.callIndex < $1.callIndex }
            + streams.map { stream in
                // A broken stream's tokens are its failed attempt's billed usage when the server
                // reported one (priced there, so $0 here); otherwise unknown, not zero (ADR 0013).
                let attempt = calls.attempts(phase: stream.phase, call: stream.call)
                let billed = running.billedAttempts.contains { $0.callIndex == stream.call && $0.model == stream.model && $0.attempt == attempt }
                return CallResponse(
                    callIndex: stream.call, text: stream.text, model: stream.model, finishReason: CallResponse.interrupted, usage: billed ? .zero : .unreported)
            }
        return LogSummary(telemetry: telemetry, usage: usage, partialResponses: partialResponses, failedCalls: failedCalls)
    }
}

/// Each call's telemetry, read in call order (primary calls by index, then the fallback's: a
/// fan-out's calls start in any order, and the record must not depend on which came first),
/// found by (phase, call): a scan for small plans, an index for large fan-outs. The telemetry
/// is kept as the array `Telemetry.calls` takes (shared, not copied, when the fold finishes);
/// the key and model of the first call are held inline, so a one-call command allocates one
/// array here, not two.
private struct CallTable: Sendable {
    private struct Meta: Sendable {
        var key: Int
        var model: String
    }

    private(set) var telemetries: [CallTelemetry] = []
    private var first: Meta?
    private var more: [Meta] = []
    private var index: [Int: Int]?

    private static func key(_ phase: Int, _ call: Int) -> Int { phase &<< 40 | call }

    private func meta(_ row: Int) -> Meta { row == 0 ? first! : more[row - 1] }

    private func find(_ key: Int) -> Int? {
        if let index { return index[key] }
        if let found = more.lastIndex(where: { $0.key == key }) { return found + 1 }
        return first?.key == key ? 0 : nil
    }

    mutating func update(phase: Int, call: Int, model: String? = nil, _ change: (inout CallTelemetry) -> Void) {
        let key = Self.key(phase, call)
        let row: Int
        if let found = find(key) {
            row = found
        } else {
            let meta = Meta(key: key, model: "")
            if first == nil { first = meta } else { more.append(meta) }
            telemetries.append(CallTelemetry(callIndex: call, attempts: 0))
            row = telemetries.count - 1
            if index != nil {
                index![key] = row
            } else if telemetries.count > 16 {
                index = Dictionary(uniqueKeysWithValues: (0..<telemetries.count).map { (self.meta($0).key, $0) })
            }
        }
        if let model {
            if row == 0 { first!.model = model } else { more[row - 1].model = model }
        }
        change(&telemetries[row])
    }

    /// The telemetries by phase, then call index; the array as it is when already in order
    /// (always, for one call).
    var inCallOrder: [CallTelemetry] {
        guard telemetries.count > 1 else { return telemetries }
        let keys = telemetries.indices.map { meta($0).key }
        if zip(keys, keys.dropFirst()).allSatisfy({ $0 < $1 }) { return telemetries }
        return zip(keys, telemetries).sorted { $0.0 < $1.0 }.map(\.1)
    }

    func attempts(phase: Int, call: Int) -> Int { find(Self.key(phase, call)).map { telemetries[$0].attempts } ?? 0 }

    func model(phase: Int, call: Int) -> String { find(Self.key(phase, call)).map { meta($0).model } ?? "" }
}

extension CallResponse {
    /// The `finish_reason` of text a broken stream delivered before it broke.
    public static let interrupted = "interrupted"
}
