/// A function the model may call, provider-neutral (`config.tools`): each adapter maps it to
/// its API's form (OpenAI `tools[].function`, Anthropic `tools[]` with `input_schema`, Gemini
/// `functionDeclarations` with `parametersJsonSchema`). The engine never runs a tool: it checks
/// the calls a model makes against `parameters` and hands them back (`GenerationResponse.toolCalls`).
public struct ToolDefinition: Sendable, Hashable {
    /// `^[A-Za-z_][A-Za-z0-9_-]{0,63}$`: what every provider accepts.
    public var name: String
    public var description: String?
    /// A JSON Schema of the arguments object, in the subset of `Design/structured-output.md`.
    public var parameters: JSONValue

    /// The parameters of a tool that takes no arguments.
    public static let noParameters: JSONValue = ["type": "object", "properties": .object([:])]

    public init(name: String, description: String? = nil, parameters: JSONValue = ToolDefinition.noParameters) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

/// Whether and which tool the model must call (`config.tool_choice`).
public enum ToolChoice: Sendable, Hashable {
    /// The model decides (the providers' default).
    case auto
    /// No tool is called.
    case none
    /// Some tool is called.
    case required
    /// This tool is called.
    case named(String)
}

/// A call the model made: which tool, with what arguments. Not executed by the engine.
public struct ToolCall: Sendable, Hashable {
    /// The provider's id of the call (`call_…`, `toolu_…`); a tool result names it. Gemini may
    /// send none: the adapter then gives `gemini-call-N` (N its position), which it does not send back.
    public var id: String
    public var name: String
    /// The arguments, parsed. `null` when the model's text of them is not JSON (`unparsedArguments`).
    public var arguments: JSONValue
    /// The model's text of the arguments when it does not parse as JSON; nil otherwise.
    public var unparsedArguments: String?
    /// An opaque token the provider gave with the call, to be sent back with it when the
    /// conversation goes on (Gemini's `thoughtSignature`: Gemini 3 refuses a continued tool
    /// conversation whose calls lost theirs). Never read by the engine; nil when none came.
    public var signature: String?

    public init(id: String, name: String, arguments: JSONValue, unparsedArguments: String? = nil, signature: String? = nil) {
        self.id = id
        self.name = name
        self.arguments = arguments
        self.unparsedArguments = unparsedArguments
        self.signature = signature
    }

    /// A call whose arguments came as JSON text (OpenAI's `function.arguments`, Anthropic's
    /// streamed `input_json_delta`s joined): parsed, or kept as text when they do not parse.
    /// Empty text is `{}` (a tool without parameters).
    public init(id: String, name: String, argumentsText: String) {
        self.id = id
        self.name = name
        let trimmed = argumentsText.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty {
            arguments = .object([:])
            unparsedArguments = nil
        } else if argumentsText.utf8.count <= OutputFormat.maximumAnswerBytes, let value = try? JSONParser.parse(Array(argumentsText.utf8)) {
            arguments = value
            unparsedArguments = nil
        } else {
            arguments = .null
            unparsedArguments = argumentsText
        }
    }

    /// The arguments as JSON text, as they go back to a provider that wants text (OpenAI).
    public var argumentsText: String { unparsedArguments ?? JSONSerializer.serialize(arguments) }

    /// The arguments as an object, as they go back to a provider that wants one (Anthropic's
    /// `input`, Gemini's `args`): `{}` when they are not an object.
    public var argumentsObject: JSONValue {
        if case .object = arguments { return arguments }
        return .object([:])
    }
}

/// What a tool returned, sent back to the model as a part (`{"type":"tool_result",…}`): the
/// user's side of a tool conversation, after the assistant turn that made the call.
public struct ToolResult: Sendable, Hashable {
    /// The id of the call it answers (`ToolCall.id`).
    public var id: String
    /// The tool's name (Gemini matches results by name).
    public var name: String
    /// A string, or any JSON value (sent as JSON text where a provider wants text).
    public var content: JSONValue
    /// The tool failed; `content` says how.
    public var isError: Bool

    public init(id: String, name: String, content: JSONValue, isError: Bool = false) {
        self.id = id
        self.name = name
        self.content = content
        self.isError = isError
    }

    /// `content` as text: a string as it is, anything else as JSON.
    public var contentText: String {
        if case .string(let s) = content { return s }
        return JSONSerializer.serialize(content)
    }
}
