/// Writes events as the JSON lines of the CLI's `--events` mode (`Design/wire-format.md`,
/// "Events mode"): `id`, `index`, `seq`, `type` and `t_ms` on every line, then the type's
/// fields. A terminal event carries under `result` the record plain mode would print.
package enum EventWriter {
    /// Appends one event (no newline). `result` writes a terminal event's record; by default
    /// `ResultWriter.record` of the event's outcome.
    public static func write(_ event: PipelineEvent, to out: inout [UInt8], result: ((CommandOutcome, inout [UInt8]) -> Void)? = nil) {
        head(id: event.commandID, index: event.index, seq: event.seq, type: event.type, elapsed: event.elapsed, to: &out)
        func key(_ name: String) {
            JSONSerializer.raw(#",""#, to: &out)
            out.append(contentsOf: name.utf8)
            JSONSerializer.raw(#"":"#, to: &out)
        }
        func int(_ name: String, _ value: Int) { key(name); JSONSerializer.writeInt(value, to: &out) }
        func string(_ name: String, _ value: String) { key(name); JSONSerializer.writeString(value, to: &out) }
        func duration(_ name: String, _ value: Duration) { key(name); ResultWriter.milliseconds(value, to: &out) }
        switch event.kind {
        case .commandStarted:
            break
        case .stageStarted(let stage):
            string("stage", stage)
        case .stageFinished(let stage, let d):
            string("stage", stage)
            duration("duration_ms", d)
        case .uploadPerformed(let path, let uri), .uploadReused(let path, let uri):
            string("path", path)
            string("uri", uri)
        case .uploadSkipped(let path):
            string("path", path)
        case .cacheCreated(let cache), .cacheReused(let cache), .cacheSkipped(let cache):
            key("cache")
            ResultWriter.cache(cache, to: &out)
        case .attemptStarted(let call, let attempt, let model, let cached):
            int("call_index", call)
            int("attempt", attempt)
            string("model", model)
            key("cached")
            ResultWriter.bool(cached, to: &out)
        case .attemptFailed(let call, let attempt, let error, let willRetry):
            int("call_index", call)
            int("attempt", attempt)
            key("error")
            ResultWriter.summary(error, to: &out)
            key("will_retry")
            ResultWriter.bool(willRetry, to: &out)
        case .waiting(let call, let reason, let d):
            int("call_index", call)
            string("reason", reason)
            duration("duration_ms", d)
        case .cacheBypassed(let call), .responseCache(let call, _):
            int("call_index", call)
        case .attemptRouted(let call, let deployment, let provider, let model):
            int("call_index", call)
            string("deployment", deployment)
            string("provider", provider)
            string("model", model)
        case .deploymentOpened(let deployment, let cooldown):
            string("deployment", deployment)
            duration("cooldown_ms", cooldown)
        case .deploymentClosed(let deployment, let openFor):
            string("deployment", deployment)
            duration("open_ms", openFor)
        case .textDelta(let call, let text):
            int("call_index", call)
            string("text", text)
        case .toolCall(let call, let toolCall):
            int("call_index", call)
            key("tool_call")
            JSONSerializer.write(toolCall.wireValue, to: &out)
        case .callFinished(let response):
            int("call_index", response.callIndex)
            key("response")
            ResultWriter.response(response, to: &out)
        case .callFailed(let call, let error):
            int("call_index", call)
            key("error")
            ResultWriter.summary(error, to: &out)
        case .fallbackStarted(let model, let primaryError):
            string("model", model)
            key("primary_error")
            ResultWriter.summary(primaryError, to: &out)
        case .commandSucceeded(let outcome), .commandFailed(let outcome):
            key("result")
            if let result { result(outcome, &out) } else { ResultWriter.record(outcome, index: event.index, to: &out) }
        }
        out.append(UInt8(ascii: "}"))
    }

    /// The two events of a command rejected before it could run — `command_started` and
    /// `command_failed` with its failure `record` (`ResultWriter.failed`) under `result` — each
    /// line ending in a newline. No outcome exists for such a command; the lines are the same
    /// as an outcome's would be.
    public static func rejected(id: String, index: Int, record: [UInt8], to out: inout [UInt8]) {
        head(id: id, index: index, seq: 0, type: "command_started", elapsed: .zero, to: &out)
        JSONSerializer.raw("}\n", to: &out)
        head(id: id, index: index, seq: 1, type: "command_failed", elapsed: .zero, to: &out)
        JSONSerializer.raw(#","result":"#, to: &out)
        out.append(contentsOf: record)
        JSONSerializer.raw("}\n", to: &out)
    }

    /// The keys every event line starts with, its brace left open.
    private static func head(id: String, index: Int, seq: Int, type: String, elapsed: Duration, to out: inout [UInt8]) {
        JSONSerializer.raw(#"{"id":"#, to: &out)
        JSONSerializer.writeString(id, to: &out)
        JSONSerializer.raw(#","index":"#, to: &out)
        JSONSerializer.writeInt(index, to: &out)
        JSONSerializer.raw(#","seq":"#, to: &out)
        JSONSerializer.writeInt(seq, to: &out)
        JSONSerializer.raw(#","type":""#, to: &out)
        out.append(contentsOf: type.utf8)
        JSONSerializer.raw(#"","t_ms":"#, to: &out)
        ResultWriter.milliseconds(elapsed, to: &out)
    }
}
