/// A call's `config.tools` checked (`Design/tool-calls.md`): every name one every provider
/// accepts and no two alike, every `parameters` an object schema within the subset of
/// `JSONSchema`, a named `tool_choice` naming one of them. A problem is an `invalid_command`
/// whose path names it (`….config.tools[1].parameters.properties.x.if`). The checked set
/// then checks each tool call of an answer against its tool's parameters.
package struct ToolSet: Sendable {
    /// Tools one call may offer (OpenAI's limit; the others take at least as many).
    public static let maximumTools = 128
    /// A tool name's length, in characters.
    public static let maximumNameLength = 64

    let names: [String]
    let schemas: [String: JSONSchema]

    /// `tools` (at `path`, the call's `….config.tools`) and `choice` checked.
    public init(_ tools: [ToolDefinition], choice: ToolChoice?, path: String) throws(APIError) {
        guard tools.count <= Self.maximumTools else {
            throw APIError(.invalidCommand, "a call offers at most \(Self.maximumTools) tools, found \(tools.count)", path: path)
        }
        var schemas: [String: JSONSchema] = [:]
        var names: [String] = []
        for (i, tool) in tools.enumerated() {
            let at = "\(path)[\(i)]"
            if let problem = Self.nameProblem(tool.name) { throw APIError(.invalidCommand, problem, path: "\(at).name") }
            guard schemas[tool.name] == nil else {
                throw APIError(.invalidCommand, "two tools are named '\(tool.name)'; give each tool its own name", path: "\(at).name")
            }
            guard case .object(let object) = tool.parameters else {
                throw APIError(
                    .invalidCommand, "parameters must be a JSON Schema object describing the arguments, e.g. {\"type\":\"object\",\"properties\":{…}}",
                    path: "\(at).parameters")
            }
            guard object["type"] == "object" else {
                throw APIError(
                    .invalidCommand, "a tool's arguments are an object: its parameters need \"type\": \"object\" (found \(object["type"].map(JSONSerializer.serialize) ?? "no type"))",
                    path: "\(at).parameters.type")
            }
            schemas[tool.name] = try JSONSchema(tool.parameters, path: "\(at).parameters")
            names.append(tool.name)
        }
        if choice == .required && names.isEmpty {
            let toolChoicePath = path.hasSuffix(".tools") ? String(path.dropLast(6)) + ".tool_choice" : "tool_choice"
            throw APIError(.invalidCommand, "tool_choice \"required\" needs at least one tool in config.tools", path: toolChoicePath)
        }
        if case .named(let name)? = choice, schemas[name] == nil {
            let toolChoicePath = path.hasSuffix(".tools") ? String(path.dropLast(6)) + ".tool_choice" : "tool_choice"
            throw APIError(
                .invalidCommand,
                names.isEmpty
                    ? "tool_choice names the tool '\(name)', but the call offers no tools: add it to config.tools"
                    : "tool_choice names the tool '\(name)', which is not among the call's tools (\(names.joined(separator: ", ")))",
                path: toolChoicePath)
        }
        self.names = names
        self.schemas = schemas
    }

    /// Why `name` is not a tool name every provider accepts, or nil: a letter or `_`, then
    /// letters, digits, `_` and `-`, at most 64 in all (the intersection of OpenAI's, Anthropic's
    /// and Gemini's rules).
    public static func nameProblem(_ name: String) -> String? {
        let scalars = name.unicodeScalars
        func word(_ s: Unicode.Scalar) -> Bool { s.isASCII && (s.properties.isAlphabetic || s == "_") }
        guard let first = scalars.first, word(first), scalars.count <= maximumNameLength,
            scalars.allSatisfy({ word($0) || ("0"..."9").contains($0) || $0 == "-" })
        else {
            let shown = name.count > 80 ? String(name.prefix(80)) + "…" : name
            return "the tool name '\(shown)' is not one every provider accepts: use 1 to \(maximumNameLength) letters, digits, '_' or '-', starting with a letter or '_'"
        }
        return nil
    }

    /// The call's arguments parsed, redacted (`OutputFormat.check` says why) and checked against
    /// its tool's parameters: the value, or the first violation (paths within the arguments, `$` their root).
    public func check(_ call: ToolCall, redactor: SecretRedactor = .none) -> Result<JSONValue, JSONSchema.Violation> {
        switch checkUnredacted(call, redactor: redactor) {
        case .success(let value): return .success(value)
        case .failure(let v): return .failure(JSONSchema.Violation(path: redactor.redact(v.path), message: redactor.redact(v.message)))
        }
    }

    private func checkUnredacted(_ call: ToolCall, redactor: SecretRedactor) -> Result<JSONValue, JSONSchema.Violation> {
        guard let schema = schemas[call.name] else {
            // Redacted before the cut: a key across the 80th character is never left half shown.
            let shown = redactor.preview(call.name, limit: 80)
            return .failure(JSONSchema.Violation(path: "$", message: "expected a call of one of the offered tools (\(names.joined(separator: ", "))), found a call of '\(shown)'"))
        }
        if call.unparsedArguments != nil {
            return .failure(JSONSchema.Violation(path: "$", message: "expected the arguments to be a JSON object, but they do not parse as JSON"))
        }
        let value = redactor.isActive ? redactor.redact(call.arguments) : call.arguments
        if OutputFormat.depth(of: value) > OutputFormat.maximumAnswerDepth {
            return .failure(JSONSchema.Violation(path: "$", message: "expected JSON nesting at most \(OutputFormat.maximumAnswerDepth) levels deep"))
        }
        if let violation = schema.validate(value) { return .failure(violation) }
        return .success(value)
    }
}
