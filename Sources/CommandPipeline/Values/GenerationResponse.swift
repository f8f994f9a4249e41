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
    public var parsed: JSONValue?
    /// The tools the model called, in order (`finishReason` is then `tool_calls`); their
    /// arguments are checked against the call's `config.tools` by `RepairUnit`.
    public var toolCalls: [ToolCall]
    /// The router's deployment that answered, and its provider (`RoutedProvider`); nil without a router.
    public var deployment: String?
    public var provider: String?

    public init(text: String, model: String, finishReason: String = "stop", usage: Usage, parsed: JSONValue? = nil, toolCalls: [ToolCall] = []) {
        self.parsed = parsed
        self.toolCalls = toolCalls
        self.text = text
        self.model = model
        self.finishReason = finishReason
        self.usage = usage
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
    public var cost: Cost?
    /// The answer's JSON value under a JSON `response_format` (`GenerationResponse.parsed`).
    public var parsed: JSONValue?
    /// The tools the model called (`GenerationResponse.toolCalls`).
    public var toolCalls: [ToolCall]
    /// The router's deployment that answered (`responses[i].deployment`) and its provider; nil without a router.
    public var deployment: String?
    public var provider: String?

    public init(
        callIndex: Int, text: String, model: String, finishReason: String, usage: Usage, cost: Cost? = nil, parsed: JSONValue? = nil,
        toolCalls: [ToolCall] = []
    ) {
        self.parsed = parsed
        self.toolCalls = toolCalls
        self.callIndex = callIndex
        self.text = text
        self.model = model
        self.finishReason = finishReason
        self.usage = usage
        self.cost = cost
    }

    public init(callIndex: Int, response: GenerationResponse) {
        self.callIndex = callIndex
        self.text = response.text
        self.model = response.model
        self.finishReason = response.finishReason
        self.usage = response.usage
        self.parsed = response.parsed
        self.toolCalls = response.toolCalls
        self.deployment = response.deployment
        self.provider = response.provider
    }
}
