/// Puts the plan's shared context into a provider cache, once per key for the whole
/// engine, and hands the reference to the generate stage.
///
/// The cache holds the shared parts and the first call's system instruction, for the
/// first call's model; calls with another model or system instruction run without it.
/// A provider without `CachingCapability` skips the stage (telemetry shows the key with no id).
/// A context below the provider's minimum cache size is no error either: the command runs
/// uncached and `telemetry.cache.uncached_reason` says why.
/// Providers that cache by prefix (`CacheReference.prefixPartCount`) fit the same stage: creating
/// the cache writes the prefix once, and the calls then carry the context with a breakpoint.
package struct CacheStage: ExecutionStage {
    public let registry: CacheRegistry
    /// Cache creation is retried like every request (`RetryPolicy.none` to not retry).
    public let retrier: Retrier

    public init(registry: CacheRegistry = CacheRegistry(), retrier: Retrier = Retrier(policy: .none)) {
        self.registry = registry
        self.retrier = retrier
    }

    public static let name = "cache"
    public var name: String { Self.name }

    /// With a cache plan the state still carries (the fallback's and a dropped one's have none).
    public func applies(to state: ExecutionState) -> Bool {
        state.cachePlan.isPresent && !state.sharedParts.isEmpty
    }

    public func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState {
        let provider = context.provider
        guard let request = state.cacheRequest else { return state }
        guard let caching = provider.caching else {
            context.log.record(.cacheSkipped(CacheTelemetry(id: nil, key: request.key, created: false, reused: false)))
            return state.with(cache: nil)
        }
        do throws(APIError) {
            let lease = try await registry.lease(for: request, using: caching, retrier: retrier)
            let telemetry = CacheTelemetry(reference: lease.reference, key: request.key, created: lease.created, ttlSeconds: request.ttlSeconds)
            context.log.record(lease.created ? .cacheCreated(telemetry) : .cacheReused(telemetry))
            return state.with(cache: lease.reference)
        } catch where error.code == APIError.cacheBelowMinimumCode {
            // Not a failure of the command: it runs with the shared parts themselves.
            context.log.record(.cacheSkipped(CacheTelemetry(id: nil, key: request.key, created: false, reused: false, uncachedReason: error.message)))
            return state.with(cache: nil)
        } catch {
            var error = error
            if error.kind != .cancelled {
                error.kind = .cacheFailed
                error.message = "creating the cache for plan.shared_parts failed: \(error.message)"
            }
            error.provider = error.provider ?? provider.providerName
            throw error
        }
    }
}
