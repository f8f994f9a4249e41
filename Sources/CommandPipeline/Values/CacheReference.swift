import Foundation

/// A provider-neutral handle on a cache the provider holds.
public struct CacheReference: Sendable, Hashable {
    /// The provider's name for the cache, e.g. `cachedContents/abc` or `mock-cache-<key>`.
    public var id: String
    /// The engine's key for the cached context.
    public var key: String
    /// The model the cache was built for; a cache is used only with that model.
    public var model: String
    /// Tokens held by the cache, when the provider says.
    public var tokenCount: Int?
    public var createdAt: Date
    public var expiresAt: Date?

    public init(
        id: String, key: String, model: String, tokenCount: Int? = nil, createdAt: Date = Date(),
        expiresAt: Date? = nil
    ) {
        self.id = id
        self.key = key
        self.model = model
        self.tokenCount = tokenCount
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}
