/// The mock's tool calls: deterministic and offline, arguments built from the tool's
/// `parameters` and the prompt as `MockStructured` builds a JSON answer, so they conform.
///
/// Like a well-behaved model in a tool loop: with `tool_choice` `none`, no call; when the last
/// part is a tool result and the choice is `auto` (or absent), the results are answered in
/// text; otherwise one call — the named tool, else the first tool whose name appears in the
/// prompt, else the first tool.
enum MockTools {
    static func calls(_ tools: [ToolDefinition]?, choice: ToolChoice?, parts: [APIPart], prompt: String) -> [ToolCall] {
        guard let tools, let first = tools.first else { return [] }
        let tool: ToolDefinition
        switch choice {
        case .none?:
            return []
        case .named(let name)?:
            guard let named = tools.first(where: { $0.name == name }) else { return [] }
            tool = named
        case .required?:
            tool = tools.first { prompt.contains($0.name) } ?? first
        case .auto?, nil:
            if case .toolResult? = parts.last { return [] }
            tool = tools.first { prompt.contains($0.name) } ?? first
        }
        let arguments = MockStructured.value(for: tool.parameters, prompt: prompt)
        // The id differs per tool, prompt and turn (the number of parts), as a provider's would.
        let id = "call_mock_" + String(MockStructured.fnv1a("\(tool.name)\u{0}\(prompt)\u{0}\(parts.count)") >> 16, radix: 16)
        return [ToolCall(id: id, name: tool.name, arguments: arguments)]
    }

    /// The text answer to the last tool result, when the request ends with one.
    static func resultAnswer(_ parts: [APIPart]) -> String? {
        guard case .toolResult(let result)? = parts.last else { return nil }
        return "echo: " + result.contentText
    }
}
