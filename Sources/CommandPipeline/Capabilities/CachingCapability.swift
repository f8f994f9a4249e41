/// A provider that can hold a context (system instruction plus parts) for later calls.
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
