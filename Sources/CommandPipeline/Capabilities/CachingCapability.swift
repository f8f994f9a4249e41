/// A provider that can hold a context (system instruction plus parts) for later calls.
///
/// When the context is smaller than the provider's minimum for a cache, `createCache`
/// throws an `APIError` whose `code` is `APIError.cacheBelowMinimumCode`: that is not a
/// failure of the command, which then runs without a cache (telemetry says why).
public protocol CachingCapability: Sendable {
    func createCache(_ request: CacheRequest) async throws -> CacheReference
    /// A live cache made earlier for `key`, or `nil` when there is none.
    func cache(forKey key: String) async throws -> CacheReference?
}

/// The context to cache.
public struct CacheRequest: Sendable, Hashable {
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
}

extension APIError {
    /// The `code` of a cache creation refused because the context is below the provider's
    /// minimum size: the command runs uncached instead of failing.
    public static let cacheBelowMinimumCode = "cache_below_minimum"
}
