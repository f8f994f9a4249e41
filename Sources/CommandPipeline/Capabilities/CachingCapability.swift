/// A provider that can hold a context (system instruction plus parts) for later calls.
///
/// When the context is smaller than the provider's minimum for a cache, `createCache`
/// throws an `APIError` whose `code` is `APIError.cacheBelowMinimumCode`: that is not a
/// failure of the command, which then runs without a cache (telemetry says why).
public protocol CachingCapability: Sendable {
    /// Caches `context` — the model, the system instruction (`config.systemInstruction`) and the
    /// shared parts the plan's calls begin with — under the engine's `key`, for `ttlSeconds`.
    func createCache(_ context: GenerationRequest, key: String, ttlSeconds: Int) async throws -> CacheReference
    /// A live cache made earlier for `key`, or `nil` when there is none.
    func cache(forKey key: String) async throws -> CacheReference?
}

/// The context to cache, as the engine and the adapters hold it (`createCache` gets it as a
/// `GenerationRequest`, `context`).
package struct CacheRequest: Sendable, Hashable {
    public var key: String
    public var model: String
    public var systemInstruction: String?
    public var parts: [APIPart]
    public var ttlSeconds: Int
    public init(key: String, model: String, systemInstruction: String?, parts: [APIPart], ttlSeconds: Int) {
        self.key = key
        self.model = model
        self.systemInstruction = systemInstruction
        self.parts = parts
        self.ttlSeconds = ttlSeconds
    }

    /// The request `createCache` is given for `context`.
    package init(_ context: GenerationRequest, key: String, ttlSeconds: Int) {
        self.init(key: key, model: context.model, systemInstruction: context.config.systemInstruction, parts: context.parts, ttlSeconds: ttlSeconds)
    }

    /// The context as `createCache` takes it: the model, the system instruction and the parts.
    package var context: GenerationRequest {
        GenerationRequest(model: model, parts: parts, config: GenerationConfig(systemInstruction: systemInstruction))
    }
}

extension APIError {
    /// The `code` of a cache creation refused because the context is below the provider's
    /// minimum size: the command runs uncached instead of failing.
    public static let cacheBelowMinimumCode = "cache_below_minimum"
}
