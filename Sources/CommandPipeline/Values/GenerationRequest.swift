/// What a provider is asked to generate: the effective parts of one call
/// (shared parts first, unless they travel in `cache`).
public struct GenerationRequest: Sendable, Hashable {
    public var model: String
    public var parts: [APIPart]
    public var config: GenerationConfig
    /// When set, the provider uses this cache: a stored one stands for the shared context (and
    /// its system instruction), which the request then leaves out; a prefix one (`prefixPartCount`) marks where the
    /// cacheable prefix of the request's own parts ends.
    public var cache: CacheReference? {
        get { boxedCache.value }
        set { boxedCache.value = newValue }
    }
    /// Whether the request uses a cache (without copying the reference out).
    var hasCache: Bool { boxedCache.isPresent }
    /// Boxed: a reference is some 160 bytes and most requests have none; inline it made every
    /// request 345 bytes, copied by `memmove` as each call's input was built (2026-12-07).
    private var boxedCache: BoxedOptional<CacheReference>

    public init(model: String, parts: [APIPart], config: GenerationConfig = GenerationConfig(), cache: CacheReference? = nil) {
        self.model = model
        self.parts = parts
        self.config = config
        self.boxedCache = BoxedOptional(cache)
    }
}
