import CommandPipeline
import Foundation

/// Tool calling in the Chat Completions shape (`Design/tool-calls.md`): `tools` as
/// `{"type":"function","function":{name, description, parameters}}`, `tool_choice` as
/// `"auto"|"none"|"required"|{"type":"function","function":{"name":…}}`, an assistant turn's
/// calls as `tool_calls` (arguments as JSON text), a tool result as a `tool` message, and the
/// calls of an answer (whole, or streamed in pieces per `index`) back as `ToolCall`s.
enum ChatTools {
    static func tools(_ tools: [ToolDefinition]) -> JSONValue {
        .array(tools.map { tool in
            var function = JSONObject()
            function["name"] = .string(tool.name)
            if let description = tool.description { function["description"] = .string(description) }
            function["parameters"] = tool.parameters
            return ["type": "function", "function": .object(function)]
        })
    }

    static func toolChoice(_ choice: ToolChoice) -> JSONValue {
        switch choice {
        case .auto: "auto"
        case .none: "none"
        case .required: "required"
        case .named(let name): ["type": "function", "function": ["name": .string(name)]]
        }
    }

    /// The assistant message of a history turn: its text (null when it only calls tools) and calls.
    static func assistantMessage(_ turn: HistoryTurn) -> JSONValue {
        guard !turn.toolCalls.isEmpty else { return ["role": "assistant", "content": .string(turn.answer)] }
        return [
            "role": "assistant", "content": turn.answer.isEmpty ? .null : .string(turn.answer),
            "tool_calls": .array(turn.toolCalls.map { call in
                ["id": .string(call.id), "type": "function", "function": ["name": .string(call.name), "arguments": .string(call.argumentsText)]]
            }),
        ]
    }

    /// A tool result as a `tool` message (the API has no error flag: the content says it).
    static func toolMessage(_ result: ToolResult) -> JSONValue {
        ["role": "tool", "tool_call_id": .string(result.id), "content": .string(result.contentText)]
    }

    /// The calls of a whole answer's `message.tool_calls`.
    static func calls(_ value: JSONValue?) -> [ToolCall] {
        (value?.arrayValue ?? []).enumerated().compactMap { index, entry -> ToolCall? in
            guard case .object(let call) = entry else { return nil }
            let function = call["function"]?.objectValue
            return ToolCall(
                id: call["id"]?.stringValue ?? "call_\(index)", name: function?["name"]?.stringValue ?? "",
                argumentsText: function?["arguments"]?.stringValue ?? "")
        }
    }

    /// A finish reason with tool calls: the provider's, except that an answer with calls is `tool_calls`
    /// when the provider says only that it stopped.
    static func finishReason(_ reason: String, hasCalls: Bool) -> String {
        hasCalls && reason == "stop" ? "tool_calls" : reason
    }

    /// Streamed tool calls: each `delta.tool_calls` entry adds to the call at its `index` (the id
    /// and name come first, the arguments in pieces). A call is whole when a later index starts or
    /// the stream says why it finished.
    struct StreamCalls {
        private struct Partial {
            var id = ""
            var name = ""
            var arguments = ""
        }
        private var partials: [Int: Partial] = [:]
        private var order: [Int] = []
        private var handedOut = 0
        /// A bound on one call's argument text (the answer bound of structured output).
        static let maximumArgumentBytes = OutputFormat.maximumAnswerBytes

        mutating func take(_ deltas: JSONValue?) throws(APIError) {
            for entry in deltas?.arrayValue ?? [] {
                guard case .object(let delta) = entry else { continue }
                let index = delta["index"]?.intValue ?? order.last ?? 0
                if partials[index] == nil {
                    partials[index] = Partial()
                    order.append(index)
                }
                if let id = delta["id"]?.stringValue, !id.isEmpty { partials[index]?.id = id }
                let function = delta["function"]?.objectValue
                if let name = function?["name"]?.stringValue, !name.isEmpty { partials[index]?.name += name }
                if let piece = function?["arguments"]?.stringValue {
                    partials[index]?.arguments += piece
                    if (partials[index]?.arguments.utf8.count ?? 0) > Self.maximumArgumentBytes {
                        throw APIError(
                            .providerError, "a streamed tool call's arguments passed \(Self.maximumArgumentBytes) bytes", retryable: false,
                            code: "tool_arguments_too_large")
                    }
                }
            }
        }

        /// The calls that are whole and not yet handed out: all but the last started, or all once `finished`.
        mutating func completed(finished: Bool) -> [ToolCall] {
            let end = finished ? order.count : max(handedOut, order.count - 1)
            guard end > handedOut else { return [] }
            let ready = order[handedOut..<end].map(call)
            handedOut = end
            return ready
        }

        var all: [ToolCall] { order.map(call) }

        private func call(_ index: Int) -> ToolCall {
            let partial = partials[index] ?? Partial()
            return ToolCall(id: partial.id.isEmpty ? "call_\(index)" : partial.id, name: partial.name, argumentsText: partial.arguments)
        }
    }
}
