/// How a call should be generated. Known keys are typed; anything a single
/// provider understands goes in `providerOptions` and is merged last by its adapter.
public struct GenerationConfig: Sendable, Hashable {
    public var systemInstruction: String? {
        _read { yield fields.value.systemInstruction }
        _modify { yield &fields.value.systemInstruction }
    }
    public var temperature: Double? {
        _read { yield fields.value.temperature }
        _modify { yield &fields.value.temperature }
    }
    public var topP: Double? {
        _read { yield fields.value.topP }
        _modify { yield &fields.value.topP }
    }
    public var maxTokens: Int? {
        _read { yield fields.value.maxTokens }
        _modify { yield &fields.value.maxTokens }
    }
    public var stop: [String]? {
        _read { yield fields.value.stop }
        _modify { yield &fields.value.stop }
    }
    public var seed: Int? {
        _read { yield fields.value.seed }
        _modify { yield &fields.value.seed }
    }
    /// Passed through to the provider, e.g. `{"type": "json_object"}`.
    public var responseFormat: JSONValue? {
        _read { yield fields.value.responseFormat }
        _modify { yield &fields.value.responseFormat }
    }
    /// Re-asks of an answer that breaks `responseFormat` (0–10); nil: the engine's
    /// `EngineConfiguration.maxRepairs`. The engine's own: never sent to a provider.
    public var maxRepairs: Int? {
        _read { yield fields.value.maxRepairs }
        _modify { yield &fields.value.maxRepairs }
    }
    /// Functions the model may call (`config.tools`); nil: none offered.
    public var tools: [ToolDefinition]? {
        _read { yield fields.value.tools }
        _modify { yield &fields.value.tools }
    }
    /// Whether and which tool must be called (`config.tool_choice`); nil: the provider's default (auto).
    public var toolChoice: ToolChoice? {
        _read { yield fields.value.toolChoice }
        _modify { yield &fields.value.toolChoice }
    }
    public var providerOptions: JSONObject {
        _read { yield fields.value.providerOptions }
        _modify { yield &fields.value.providerOptions }
    }

    public init(
        systemInstruction: String? = nil, temperature: Double? = nil, topP: Double? = nil,
        maxTokens: Int? = nil, stop: [String]? = nil, seed: Int? = nil,
        responseFormat: JSONValue? = nil, providerOptions: JSONObject = [:]
    ) {
        guard systemInstruction.isPresent || temperature.isPresent || topP.isPresent || maxTokens.isPresent || stop.isPresent || seed.isPresent
            || responseFormat.isPresent || !providerOptions.isEmpty
        else {
            fields = Self.empty
            return
        }
        fields = CopyOnWrite(Fields(
            systemInstruction: systemInstruction, temperature: temperature, topP: topP, maxTokens: maxTokens, stop: stop, seed: seed,
            responseFormat: responseFormat, providerOptions: providerOptions))
    }

    // The fields behind one reference (`CopyOnWrite`), as `PlannedCommand`'s: a config is some
    // 160 bytes with six references in it, copied into every call's request and read by the
    // units and the provider; inline, each copy was a `memmove` and six retains and releases
    // (`PipelineBench --scenario overhead`, 2026-12-07). A config with nothing set shares one.
    private struct Fields: Sendable, Hashable {
        var systemInstruction: String?
        var temperature: Double?
        var topP: Double?
        var maxTokens: Int?
        var stop: [String]?
        var seed: Int?
        var responseFormat: JSONValue?
        var maxRepairs: Int?
        var tools: [ToolDefinition]?
        var toolChoice: ToolChoice?
        var providerOptions: JSONObject
    }

    private static let empty = CopyOnWrite(Fields(providerOptions: [:]))

    private var fields: CopyOnWrite<Fields>

    public static func == (lhs: GenerationConfig, rhs: GenerationConfig) -> Bool {
        lhs.fields.shares(with: rhs.fields) || lhs.fields.value == rhs.fields.value
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(fields.value) }

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
