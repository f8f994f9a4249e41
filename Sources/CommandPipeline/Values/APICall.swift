/// One generation call: a model, the call's own parts and its config.
/// The plan's shared parts are sent before `parts`.
public struct APICall: Sendable, Hashable {
    public var model: String
    public var parts: [APIPart]
    public var config: GenerationConfig

    public init(model: String, parts: [APIPart], config: GenerationConfig = GenerationConfig()) {
        self.model = model
        self.parts = parts
        self.config = config
    }

    /// A copy with other parts; used by the upload stage to substitute references.
    public func with(parts: [APIPart]) -> APICall {
        var copy = self
        copy.parts = parts
        return copy
    }
}
