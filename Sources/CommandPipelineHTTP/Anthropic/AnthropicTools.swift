import CommandPipeline
import Foundation

/// Tool calling in the Messages API shape (`Design/tool-calls.md`): `tools` as
/// `{name, description, input_schema}`, `tool_choice` as `{"type":"auto"|"none"|"any"}` or
/// `{"type":"tool","name":…}`, an assistant turn's calls as `tool_use` blocks (arguments as the
/// `input` object), a tool result as a `tool_result` block of the user turn, and the calls of
/// an answer (whole, or streamed as `input_json_delta` pieces per block) back as `ToolCall`s.
enum AnthropicTools {
    static func tools(_ tools: [ToolDefinition]) -> JSONValue {
        .array(tools.map { tool in
            var object = JSONObject()
            object["name"] = .string(tool.name)
            if let description = tool.description { object["description"] = .string(description) }
            object["input_schema"] = tool.parameters
            return .object(object)
        })
    }

    static func toolChoice(_ choice: ToolChoice) -> JSONValue {
        switch choice {
        case .auto: ["type": "auto"]
        case .none: ["type": "none"]
        case .required: ["type": "any"]
        case .named(let name): ["type": "tool", "name": .string(name)]
        }
    }

    static func toolUse(_ call: ToolCall) -> JSONValue {
        ["type": "tool_use", "id": .string(call.id), "name": .string(call.name), "input": call.argumentsObject]
    }

    static func toolResult(_ result: ToolResult) -> JSONValue {
        var block: JSONObject = ["type": "tool_result", "tool_use_id": .string(result.id), "content": .string(result.contentText)]
        if result.isError { block["is_error"] = true }
        return .object(block)
    }

    /// The calls among a whole answer's content blocks.
    static func calls(_ content: JSONValue?) -> [ToolCall] {
        (content?.arrayValue ?? []).enumerated().compactMap { index, block -> ToolCall? in
            guard case .object(let b) = block, b["type"]?.stringValue == "tool_use" else { return nil }
            return ToolCall(id: b["id"]?.stringValue ?? "toolu_\(index)", name: b["name"]?.stringValue ?? "", arguments: b["input"] ?? .object([:]))
        }
    }

    /// Streamed `tool_use` blocks: started by `content_block_start` (id, name, an `input` that is
    /// `{}` when the arguments follow as pieces), grown by `input_json_delta`s, whole at
    /// `content_block_stop`.
    struct StreamCalls {
        private struct Partial {
            var id: String
            var name: String
            var initial: JSONValue
            var json = ""
        }
        private var open: [Int: Partial] = [:]
        private(set) var finished: [ToolCall] = []
        private var handedOut = 0

        mutating func start(index: Int, block: JSONObject) {
            open[index] = Partial(
                id: block["id"]?.stringValue ?? "toolu_\(index)", name: block["name"]?.stringValue ?? "", initial: block["input"] ?? .object([:]))
        }

        /// Adds a piece of a block's arguments (nothing when no tool block is open at `index`).
        mutating func add(index: Int, json: String) throws(APIError) {
            guard open[index] != nil else { return }
            open[index]?.json += json
            if (open[index]?.json.utf8.count ?? 0) > OutputFormat.maximumAnswerBytes {
                throw APIError(
                    .providerError, "a streamed tool call's arguments passed \(OutputFormat.maximumAnswerBytes) bytes", retryable: false,
                    code: "tool_arguments_too_large")
            }
        }

        mutating func stop(index: Int) {
            guard let partial = open.removeValue(forKey: index) else { return }
            finished.append(
                partial.json.isEmpty
                    ? ToolCall(id: partial.id, name: partial.name, arguments: partial.initial)
                    : ToolCall(id: partial.id, name: partial.name, argumentsText: partial.json))
        }

        /// Calls finished since the last time this was asked.
        mutating func completed() -> [ToolCall] {
            guard finished.count > handedOut else { return [] }
            let ready = Array(finished[handedOut...])
            handedOut = finished.count
            return ready
        }
    }
}
