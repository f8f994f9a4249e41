import Foundation

/// Checks the CLI's `--events` output against the rules of `WIRE-FORMAT.md` ("Events mode"):
/// every line has `id`, `index`, `seq`, `type`; per command `seq` runs 0, 1, 2, … in line
/// order, `command_started` comes first, and exactly one `command_succeeded` or
/// `command_failed` comes last, carrying the plain-mode record under `result`; the
/// `text_delta` pieces of each call concatenate to that call's final text (those after the
/// call's last rejected answer, an `attempt_failed` of kind `invalid_output`, when it was repaired).
public struct EventStreamCheck {
    /// Each command's events, in order, by id.
    public private(set) var commands: [String: [[String: Any]]] = [:]
    /// Ids in the order their first event appeared.
    public private(set) var order: [String] = []
    /// Every rule broken, with the line it was seen on.
    public private(set) var problems: [String] = []

    public init(_ stdout: String) {
        for (number, line) in stdout.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            guard let event = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                problems.append("line \(number + 1) is not a JSON object: \(line.prefix(200))")
                continue
            }
            guard let id = event["id"] as? String, event["index"] is Int, let seq = event["seq"] as? Int, let type = event["type"] as? String else {
                problems.append("line \(number + 1) lacks id, index, seq or type: \(line.prefix(200))")
                continue
            }
            var events = commands[id] ?? []
            if events.isEmpty { order.append(id) }
            if seq != events.count { problems.append("line \(number + 1): \(id) has seq \(seq) after \(events.count) events") }
            if events.isEmpty && type != "command_started" { problems.append("line \(number + 1): \(id) starts with \(type)") }
            if let last = events.last?["type"] as? String, last == "command_succeeded" || last == "command_failed" {
                problems.append("line \(number + 1): \(id) has \(type) after its terminal event")
            }
            events.append(event)
            commands[id] = events
        }
        for (id, events) in commands {
            let terminals = events.filter { ["command_succeeded", "command_failed"].contains($0["type"] as? String) }
            guard terminals.count == 1, let terminal = terminals.first else {
                problems.append("\(id) has \(terminals.count) terminal events")
                continue
            }
            guard let result = terminal["result"] as? [String: Any] else {
                problems.append("\(id): the terminal event has no result")
                continue
            }
            let status = result["status"] as? String
            if (terminal["type"] as? String == "command_succeeded") != (status == "succeeded") {
                problems.append("\(id): \(terminal["type"] ?? "") carries a \(status ?? "nil") result")
            }
            if result["id"] as? String != id { problems.append("\(id): the result is for \(result["id"] ?? "nil")") }
            guard status == "succeeded" else { continue }
            // After a fallback, deltas of the fallback call (after `fallback_started`) make its text.
            let fallback = events.lastIndex { $0["type"] as? String == "fallback_started" }
            let deltas = events.enumerated().dropFirst(fallback.map { $0 + 1 } ?? 0).filter { $0.element["type"] as? String == "text_delta" }
            guard !deltas.isEmpty else { continue }
            for response in result["responses"] as? [[String: Any]] ?? [] {
                let call = response["call_index"] as? Int
                // A repaired call's answer starts after its last rejected one (structured output).
                let rejected = events.lastIndex {
                    $0["type"] as? String == "attempt_failed" && $0["call_index"] as? Int == call
                        && ($0["error"] as? [String: Any])?["kind"] as? String == "invalid_output"
                } ?? -1
                let text = deltas.filter { $0.element["call_index"] as? Int == call && $0.offset > rejected }.compactMap { $0.element["text"] as? String }.joined()
                if text != response["text"] as? String {
                    problems.append("\(id): call \(call ?? -1) deltas make \(text.debugDescription), the result says \(String(describing: response["text"]))")
                }
            }
        }
    }

    /// The types of a command's events, in order.
    public func types(_ id: String) -> [String] { (commands[id] ?? []).compactMap { $0["type"] as? String } }

    /// A command's terminal result record.
    public func result(_ id: String) -> [String: Any]? { commands[id]?.last?["result"] as? [String: Any] }
}
