import CommandPipeline
import Foundation

/// Tool calling in the `generateContent` shape (`Design/tool-calls.md`): `tools` as one
/// `{"functionDeclarations":[{name, description, parametersJsonSchema}]}`, `tool_choice` as
/// `toolConfig.functionCallingConfig` (`AUTO`, `NONE`, `ANY`, `ANY` with one allowed name), an
/// assistant turn's calls as `functionCall` parts of the `model` turn, a tool result as a
/// `functionResponse` part of the user turn, and an answer's `functionCall` parts back as
/// `ToolCall`s. Gemini sends each call whole, also when streaming.
///
/// Thought signatures: Gemini 3 puts a `thoughtSignature` (base64) on the part of a call (the
/// first of parallel calls, the first of each step), beside `functionCall`. It becomes the call's
/// `signature` and goes back on that call's part in history, as it came: without it Gemini 3
/// refuses the continued conversation (400, "Function call is missing a thought_signature").
enum GeminiTools {
    /// The id prefix of a call Gemini sent without an id: such ids are the adapter's own and are
    /// not sent back.
    static let syntheticIDPrefix = "gemini-call-"

    static func tools(_ tools: [ToolDefinition]) -> JSONValue {
        [["functionDeclarations": .array(tools.map { tool in
            var declaration = JSONObject()
            declaration["name"] = .string(tool.name)
            if let description = tool.description { declaration["description"] = .string(description) }
            declaration["parametersJsonSchema"] = tool.parameters
            return .object(declaration)
        })]]
    }

    static func toolConfig(_ choice: ToolChoice) -> JSONValue {
        let config: JSONValue
        switch choice {
        case .auto: config = ["mode": "AUTO"]
        case .none: config = ["mode": "NONE"]
        case .required: config = ["mode": "ANY"]
        case .named(let name): config = ["mode": "ANY", "allowedFunctionNames": [.string(name)]]
        }
        return ["functionCallingConfig": config]
    }

    static func functionCall(_ call: ToolCall) -> JSONValue {
        var object: JSONObject = ["name": .string(call.name), "args": call.argumentsObject]
        if !call.id.hasPrefix(syntheticIDPrefix) { object["id"] = .string(call.id) }
        guard let signature = call.signature else { return ["functionCall": .object(object)] }
        return ["functionCall": .object(object), "thoughtSignature": .string(signature)]
    }

    /// `response` must be an object: an object result is sent as it is, anything else under
    /// `result` (`error` when the tool failed), as the API documents.
    static func functionResponse(_ result: ToolResult) -> JSONValue {
        let response: JSONValue
        if case .object = result.content, !result.isError {
            response = result.content
        } else {
            response = [result.isError ? "error" : "result": result.content]
        }
        var object: JSONObject = ["name": .string(result.name), "response": response]
        if !result.id.hasPrefix(syntheticIDPrefix) { object["id"] = .string(result.id) }
        return ["functionResponse": .object(object)]
    }

    /// The call of one `functionCall` part, the `position`-th call of the answer.
    static func call(_ part: JSONObject, position: Int) -> ToolCall? {
        guard case .object(let call)? = part["functionCall"] else { return nil }
        let id = call["id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? "\(syntheticIDPrefix)\(position)"
        let signature = part["thoughtSignature"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        return ToolCall(id: id, name: call["name"]?.stringValue ?? "", arguments: call["args"] ?? .object([:]), signature: signature)
    }
}
