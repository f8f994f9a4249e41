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
    /// How the provider holds the context, which decides what a request using the cache carries.
    /// nil: the provider stores the context under `id` (Gemini, the mock): a request names the
    /// cache and carries only the call's own parts, without the system instruction. A number:
    /// the provider caches a request's leading context by itself (Anthropic): a request carries
    /// the whole context, and the provider marks the end of its system instruction and first
    /// `prefixPartCount` parts as the cacheable prefix. Nothing can go stale: a prefix the
    /// provider no longer holds is simply written again.
    public var prefixPartCount: Int?
    /// What the request that created the cache was billed for, as its answer reported it
    /// (Anthropic: the warm-up's usage; Gemini: the cached tokens, written once); nil when
    /// unknown or for a cache found rather than created. Priced on the command that created it.
    public var creationUsage: Usage?

    public init(
        id: String, key: String, model: String, tokenCount: Int? = nil, createdAt: Date = Date(),
        expiresAt: Date? = nil, prefixPartCount: Int? = nil, creationUsage: Usage? = nil
    ) {
        self.creationUsage = creationUsage
        self.id = id
        self.key = key
        self.model = model
        self.tokenCount = tokenCount
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.prefixPartCount = prefixPartCount
    }
}
