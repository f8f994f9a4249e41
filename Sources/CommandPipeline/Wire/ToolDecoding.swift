/// The wire form of tool values (`Design/tool-calls.md`): `config.tools`, `config.tool_choice`,
/// a history turn's `tool_calls`, and `tool_result` parts. Shapes only; names, schemas and
/// references are checked by `PlannedCommand.validationIssues()` (`ToolValidation`).
extension WireFormat {
    static func tools(_ value: JSONValue, _ r: inout WireReader) -> [ToolDefinition]? {
        r.array(value) { r, e -> ToolDefinition? in
            guard let object = r.object(e, known: ["name", "description", "parameters"], what: "a tool ({\"name\",\"description\",\"parameters\"})") else { return nil }
            let name = r.field(object, "name", required: true) { r, v in r.string(v) }
            let description = r.field(object, "description") { r, v in r.string(v) }
            let parameters = object["parameters"].flatMap { $0 == .null ? nil : $0 } ?? ToolDefinition.noParameters
            guard let name else { return nil }
            return ToolDefinition(name: name, description: description, parameters: parameters)
        }
    }

    static func toolChoice(_ value: JSONValue, _ r: inout WireReader) -> ToolChoice? {
        switch value {
        case .string("auto"): return .auto
        case .string("none"): return ToolChoice.none
        case .string("required"): return .required
        case .object(let object):
            guard r.object(value, known: ["name"], what: "tool_choice") != nil else { return nil }
            return r.field(object, "name", required: true) { r, v in r.string(v) }.map(ToolChoice.named)
        default:
            r.fail("tool_choice must be \"auto\", \"none\", \"required\" or {\"name\": \"a tool's name\"}, found \(value.typeName == "string" ? JSONSerializer.serialize(value) : value.typeName)")
            return nil
        }
    }

    static func toolCall(_ value: JSONValue, _ r: inout WireReader) -> ToolCall? {
        guard let object = r.object(value, known: ["id", "name", "arguments", "signature"], what: "a tool call ({\"id\",\"name\",\"arguments\"}, and the \"signature\" its answer carried)") else { return nil }
        let id = r.field(object, "id", required: true) { r, v in r.string(v) }
        let name = r.field(object, "name", required: true) { r, v in r.string(v) }
        let arguments = r.field(object, "arguments") { r, v -> JSONValue? in
            if case .object = v { return v }
            r.fail("expected the arguments as an object, found \(v.typeName)")
            return nil
        } ?? .object([:])
        // Opaque: sent back to the provider as it came (Gemini's thoughtSignature).
        let signature = r.field(object, "signature") { r, v in r.string(v) }
        guard let id, let name else { return nil }
        return ToolCall(id: id, name: name, arguments: arguments, signature: signature)
    }

    static func toolResult(_ object: JSONObject, _ r: inout WireReader) -> ToolResult? {
        let id = r.field(object, "id", required: true) { r, v in r.string(v) }
        let name = r.field(object, "name", required: true) { r, v in r.string(v) }
        let content = r.field(object, "content", required: true) { _, v in v }
        let isError = r.field(object, "is_error") { r, v in r.bool(v) } ?? false
        guard let id, let name, let content else { return nil }
        return ToolResult(id: id, name: name, content: content, isError: isError)
    }
}

extension ToolDefinition: WireEncodable {
    public var wireValue: JSONValue {
        var object = JSONObject()
        object["name"] = .string(name)
        if let description { object["description"] = .string(description) }
        object["parameters"] = parameters
        return .object(object)
    }
}

extension ToolChoice: WireEncodable {
    public var wireValue: JSONValue {
        switch self {
        case .auto: "auto"
        case .none: "none"
        case .required: "required"
        case .named(let name): ["name": .string(name)]
        }
    }
}

extension ToolCall: WireEncodable {
    /// `{"id","name","arguments"}`, and `"signature"` when the provider gave one; arguments that did not parse are `null`.
    public var wireValue: JSONValue {
        guard let signature else { return ["id": .string(id), "name": .string(name), "arguments": arguments] }
        return ["id": .string(id), "name": .string(name), "arguments": arguments, "signature": .string(signature)]
    }
}

extension ToolResult: WireEncodable {
    public var wireValue: JSONValue {
        var object: JSONObject = ["type": "tool_result", "id": .string(id), "name": .string(name), "content": content]
        if isError { object["is_error"] = true }
        return .object(object)
    }
}
