/// The caches an engine knows, by key. A cache is created once, however many commands
/// ask for it concurrently, and reused until its time to live runs out on the engine's clock.
package final class CacheRegistry: Sendable {
    /// A cache reference and how this command came by it.
    package struct Lease: Sendable, Hashable {
        public var reference: CacheReference
        /// This command's request created the cache at the provider.
        public var created: Bool
    }

    /// What one creation attempt settled for a key: a cache, or the provider's word that the
    /// context is below its minimum size (remembered too, so later commands do not ask again).
    private enum Memo: Sendable {
        case lease(Lease)
        case belowMinimum(APIError)
    }

    private let flights = SingleFlight<String, Memo>()
    private let clock: any PipelineClock

    public init(clock: any PipelineClock = SystemClock()) { self.clock = clock }

    /// Finds a live cache for `request.key` (here, or at the provider) or creates one.
    /// A context the provider finds too small (`APIError.cacheBelowMinimumCode`) is remembered
    /// for the TTL like a cache, and every asker gets that error without asking the provider again.
    /// Looking up and creating go through `retrier`, inside the single flight, so commands
    /// waiting for the same cache share one retried creation.
    package func lease(for request: CacheRequest, using caching: any CachingCapability, retrier: Retrier = Retrier(policy: .none)) async throws(APIError) -> Lease {
        let clock = self.clock
        let ttl = Duration.seconds(request.ttlSeconds)
        let (memo, shared) = try await flights.value(for: request.key, now: { clock.now }) { () throws(APIError) in
            let outcome = await retrier.run(cancelled: APIError(.cancelled, "creating cache '\(request.key)' was cancelled")) { _ -> Result<Lease, APIError> in
                do {
                    if let existing = try await caching.cache(forKey: request.key) { return .success(Lease(reference: existing, created: false)) }
                    return .success(Lease(reference: try await caching.createCache(request.context, key: request.key, ttlSeconds: request.ttlSeconds), created: true))
                } catch {
                    return .failure(APIError(wrapping: error, kind: .cacheFailed, provider: nil, context: "cache"))
                }
            }
            switch outcome.result {
            case .success(let lease): return (Memo.lease(lease), clock.now + ttl)
            case .failure(let error) where error.code == APIError.cacheBelowMinimumCode: return (Memo.belowMinimum(error), clock.now + ttl)
            case .failure(let error): throw error
            }
        }
        switch memo {
        case .lease(let lease): return shared ? Lease(reference: lease.reference, created: false) : lease
        case .belowMinimum(let error): throw error
        }
    }

    /// Forgets `key`, e.g. after the provider said the cache is gone.
    public func invalidate(key: String) async { await flights.invalidate(key) }
}
