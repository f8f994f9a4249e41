/// A request to put the plan's shared context (shared parts and system instruction)
/// into a provider cache that every call of the plan, and later commands, reuse.
public struct CachePlan: Sendable, Hashable {
    public var ttlSeconds: Int
    /// An explicit key; by default the key is derived from model, system instruction and shared parts.
    public var key: String?

    public init(ttlSeconds: Int = 3600, key: String? = nil) {
        self.ttlSeconds = ttlSeconds
        self.key = key
    }
}
