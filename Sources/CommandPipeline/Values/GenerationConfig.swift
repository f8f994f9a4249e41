/// How a call should be generated. Known keys are typed; anything a single
/// provider understands goes in `providerOptions` and is merged last by its adapter.
public struct GenerationConfig: Sendable, Hashable {
    public var systemInstruction: String?
    public var temperature: Double?
    public var topP: Double?
    public var maxTokens: Int?
    public var stop: [String]?
    public var seed: Int?
    /// Passed through to the provider, e.g. `{"type": "json_object"}`.
    public var responseFormat: JSONValue?
    /// Re-asks of an answer that breaks `responseFormat` (0–10); nil: the engine's
    /// `EngineConfiguration.maxRepairs`. The engine's own: never sent to a provider.
    public var maxRepairs: Int?
    /// Functions the model may call (`config.tools`); nil: none offered.
    public var tools: [ToolDefinition]?
    /// Whether and which tool must be called (`config.tool_choice`); nil: the provider's default (auto).
    public var toolChoice: ToolChoice?
    public var providerOptions: JSONObject

    public init(
        systemInstruction: String? = nil, temperature: Double? = nil, topP: Double? = nil,
        maxTokens: Int? = nil, stop: [String]? = nil, seed: Int? = nil,
        responseFormat: JSONValue? = nil, providerOptions: JSONObject = [:]
    ) {
        self.systemInstruction = systemInstruction
        self.temperature = temperature
        self.topP = topP
        self.maxTokens = maxTokens
        self.stop = stop
        self.seed = seed
        self.responseFormat = responseFormat
        self.providerOptions = providerOptions
    }

    /// The wire names of the typed keys, for unknown-key errors.
    public static let knownKeys = [
        "system_instruction", "temperature", "top_p", "max_tokens", "stop", "seed", "response_format",
        "max_repairs", "tools", "tool_choice", "provider_options",
    ]

    /// This config without its system instruction (it travels in a cache instead).
    public func withoutSystemInstruction() -> GenerationConfig {
        var copy = self
        copy.systemInstruction = nil
        return copy
    }
}
