/// A provider's answer, normalised by its adapter.
public struct GenerationResponse: Sendable, Hashable {
    public var text: String
    /// The model that produced the answer.
    public var model: String
    /// `stop`, `length`, `content_filter`, `tool_calls`, or the provider's own word.
    public var finishReason: String
    public var usage: Usage
    /// The answer's JSON value, when the call's `response_format` asks for JSON and the answer
    /// conforms (set by `RepairUnit`).
    public var parsed: JSONValue? {
        get { rare.parsed }
        set { rare.parsed = newValue }
    }
    /// The tools the model called, in order (`finishReason` is then `tool_calls`); their
    /// arguments are checked against the call's `config.tools` by `RepairUnit`.
    public var toolCalls: [ToolCall] {
        get { rare.toolCalls }
        set { rare.toolCalls = newValue }
    }
    /// The router's deployment that answered, and its provider (`RoutedProvider`); nil without a router.
    public var deployment: String? {
        get { rare.deployment }
        set { rare.deployment = newValue }
    }
    public var provider: String? {
        get { rare.provider }
        set { rare.provider = newValue }
    }

    /// `parsed`, `toolCalls`, `deployment`, `provider` (`AnswerExtras`).
    var rare: AnswerExtras.Field

    public init(text: String, model: String, finishReason: String = "stop", usage: Usage, parsed: JSONValue? = nil, toolCalls: [ToolCall] = []) {
        self.text = text
        self.model = model
        self.finishReason = finishReason
        self.usage = usage
        self.rare = AnswerExtras.Field(AnswerExtras(parsed: parsed, toolCalls: toolCalls))
    }
}

/// What most answers leave empty — a JSON value, tool calls, a router's deployment and
/// provider, a price — behind one immutable box, nil when all are empty. An answer passes
/// through every async frame of the call chain (`Result<GenerationResponse, APIError>`) and is
/// copied into the state, the log and the result: inline these fields made a response 168
/// bytes and a `CallResponse` 240, each move a `memmove` call (some 20 per command on the mock,
/// `PipelineBench --scenario overhead`, 2026-12-07); boxed, 112 and 120 bytes, moved inline.
/// A `CallResponse` made from a response shares its box.
struct AnswerExtras: Sendable, Hashable {
    var parsed: JSONValue?
    var toolCalls: [ToolCall] = []
    var deployment: String?
    var provider: String?
    /// `CallResponse.cost` (a `GenerationResponse` has none).
    var cost: Cost?

    static let none = AnswerExtras()

    /// Every field empty (tested on the optionals' tags: comparing with `.none` copied each).
    var isEmpty: Bool { !parsed.isPresent && toolCalls.isEmpty && !deployment.isPresent && !provider.isPresent && !cost.isPresent }

    /// The fields as a stored property: boxed (`BoxedOptional`), no box when all are empty,
    /// each field read in the box.
    struct Field: Sendable, Hashable {
        private var boxed: BoxedOptional<AnswerExtras>

        init(_ value: AnswerExtras) { boxed = BoxedOptional(value.isEmpty ? nil : value) }

        var value: AnswerExtras {
            get { boxed.value ?? .none }
            set { boxed.value = newValue.isEmpty ? nil : newValue }
        }

        var parsed: JSONValue? {
            get { boxed.read { $0.parsed } ?? nil }
            set { value.parsed = newValue }
        }
        var toolCalls: [ToolCall] {
            get { boxed.read { $0.toolCalls } ?? [] }
            set { value.toolCalls = newValue }
        }
        var deployment: String? {
            get { boxed.read { $0.deployment } ?? nil }
            set { value.deployment = newValue }
        }
        var provider: String? {
            get { boxed.read { $0.provider } ?? nil }
            set { value.provider = newValue }
        }
        var cost: Cost? {
            get { boxed.read { $0.cost } ?? nil }
            set { value.cost = newValue }
        }
    }
}

/// A response placed in the command's result, with the index of the call it answers.
public struct CallResponse: Sendable, Hashable {
    public var callIndex: Int
    public var text: String
    public var model: String
    public var finishReason: String
    public var usage: Usage
    /// What this call cost by the catalog's prices; nil when unpriced.
    public var cost: Cost? {
        get { rare.cost }
        set { rare.cost = newValue }
    }
    /// The answer's JSON value under a JSON `response_format` (`GenerationResponse.parsed`).
    public var parsed: JSONValue? {
        get { rare.parsed }
        set { rare.parsed = newValue }
    }
    /// The tools the model called (`GenerationResponse.toolCalls`).
    public var toolCalls: [ToolCall] {
        get { rare.toolCalls }
        set { rare.toolCalls = newValue }
    }
    /// The router's deployment that answered (`responses[i].deployment`) and its provider; nil without a router.
    public var deployment: String? {
        get { rare.deployment }
        set { rare.deployment = newValue }
    }
    public var provider: String? {
        get { rare.provider }
        set { rare.provider = newValue }
    }

    /// `cost`, `parsed`, `toolCalls`, `deployment`, `provider` (`AnswerExtras`).
    private var rare: AnswerExtras.Field

    public init(
        callIndex: Int, text: String, model: String, finishReason: String, usage: Usage, cost: Cost? = nil, parsed: JSONValue? = nil,
        toolCalls: [ToolCall] = []
    ) {
        self.callIndex = callIndex
        self.text = text
        self.model = model
        self.finishReason = finishReason
        self.usage = usage
        self.rare = AnswerExtras.Field(AnswerExtras(parsed: parsed, toolCalls: toolCalls, cost: cost))
    }

    /// The response's answer; its rarely set fields shared, not copied (a response has no cost).
    public init(callIndex: Int, response: GenerationResponse) {
        self.callIndex = callIndex
        self.text = response.text
        self.model = response.model
        self.finishReason = response.finishReason
        self.usage = response.usage
        self.rare = response.rare
    }
}
