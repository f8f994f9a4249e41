/// What a provider is asked to generate: the effective parts of one call
/// (shared parts first, unless they travel in `cache`).
public struct GenerationRequest: Sendable, Hashable {
    public var model: String
    public var parts: [APIPart]
    public var config: GenerationConfig
    /// When set, the provider prepends the cached context (and its system instruction).
    public var cache: CacheReference?

    public init(model: String, parts: [APIPart], config: GenerationConfig = GenerationConfig(), cache: CacheReference? = nil) {
        self.model = model
        self.parts = parts
        self.config = config
        self.cache = cache
    }
}
