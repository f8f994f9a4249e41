/// What a command's event log adds up to: its telemetry, its usage, and what a failure
/// leaves behind. This is the only place telemetry is computed; the telemetry stage runs it
/// for a success, the engine for a failure.
public struct LogSummary: Sendable {
    public var telemetry: Telemetry
    /// Usage of the responses of the last execution (the primary's, or the fallback's).
    public var usage: Usage
    /// Responses of calls that finished in the primary execution, then text delivered by
    /// calls whose stream broke (`finish_reason` `interrupted`).
    public var partialResponses: [CallResponse]
    /// Calls of the primary execution that failed.
    public var failedCalls: [Int]

    /// Folds `entries` in order. `estimate` gives `telemetry.tokenValidation` (nil for failures).
    public init(_ entries: [EventLog.Entry], provider: String, total: Duration, estimate: TokenEstimate? = nil) {
        var telemetry = Telemetry(provider: provider)
        var phase = 0
        var calls: [(phase: Int, call: CallTelemetry)] = []
        var finished: [(phase: Int, response: CallResponse)] = []
        var failed: [Int] = []
        var streamed: [(phase: Int, call: Int, model: String, text: String)] = []
        var models: [Int: String] = [:]

        func callIndex(_ call: Int) -> Int {
            if let i = calls.lastIndex(where: { $0.phase == phase && $0.call.callIndex == call }) { return i }
            calls.append((phase, CallTelemetry(callIndex: call, attempts: 0)))
            return calls.count - 1
        }

        for entry in entries {
            switch entry.kind {
            case .stageFinished(let name, let duration): telemetry.durations[name] += duration
            case .uploadPerformed: telemetry.uploads.performed += 1
            case .uploadReused: telemetry.uploads.reused += 1
            case .uploadSkipped: telemetry.uploads.skipped += 1
            case .cacheCreated(let cache), .cacheReused(let cache), .cacheSkipped(let cache): telemetry.cache = cache
            case .attemptStarted(let call, _, let model, _):
                calls[callIndex(call)].call.attempts += 1
                models[call] = model
            case .waiting(let call, _, let duration): calls[callIndex(call)].call.retryWait += duration
            case .cacheBypassed(let call): calls[callIndex(call)].call.cacheBypassed = true
            case .textDelta(let call, let text):
                if let i = streamed.lastIndex(where: { $0.phase == phase && $0.call == call }) {
                    streamed[i].text += text
                } else {
                    streamed.append((phase, call, models[call] ?? "", text))
                }
            case .callFinished(let response):
                finished.append((phase, response))
                streamed.removeAll { $0.phase == phase && $0.call == response.callIndex }
            case .callFailed(let call, _): if phase == 0 { failed.append(call) }
            case .fallbackStarted(_, let primaryError):
                telemetry.usedFallback = true
                telemetry.primaryError = primaryError
                phase += 1
                models = [:]
            case .commandStarted, .stageStarted, .attemptFailed, .commandSucceeded, .commandFailed: break
            }
        }
        telemetry.durations.total = total
        telemetry.calls = calls.map(\.call)
        let last = finished.filter { $0.phase == phase }.map(\.response)
        self.usage = last.reduce(Usage.zero) { $0 + $1.usage }
        if let estimate { telemetry.tokenValidation = TokenValidation(estimate: estimate, actual: usage.totalTokens) }
        self.telemetry = telemetry
        self.failedCalls = failed.sorted()
        self.partialResponses = finished.filter { $0.phase == 0 }.map(\.response).sorted { $0.callIndex < $1.callIndex }
            + streamed.map { CallResponse(callIndex: $0.call, text: $0.text, model: $0.model, finishReason: CallResponse.interrupted, usage: .zero) }
    }
}

extension CallResponse {
    /// The `finish_reason` of text a broken stream delivered before it broke.
    public static let interrupted = "interrupted"
}
