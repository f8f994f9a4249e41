import Foundation

/// Answers kept across runs, so the same call is not paid for twice (`EngineConfiguration.responseCache`,
/// the CLI's `--response-cache PATH`). The engine asks before each call (`ResponseCacheUnit`) and
/// hands over each successful, complete answer; a store decides how long it keeps them (a TTL)
/// and how much (a size bound, oldest first out). `Design/response-cache.md` has the key and
/// the guarantees.
///
/// Both requirements are synchronous: they run on every call, and the stores here answer from
/// memory or one indexed read. A store must not fail the call whose answer it is keeping: a
/// write that fails is kept and thrown by `finish`, which the owner calls once at the end.
///
/// A key is the SHA-256, as 64 lowercase hex digits, of everything that decides the answer
/// (`ResponseCacheKey` inside the package; `Design/response-cache.md`).
public protocol ResponseCache: Sendable {
    /// The answer stored under `key` and still fresh; nil when there is none (or it cannot be read).
    func answer(for key: String) -> GenerationResponse?
    /// Keeps `answer` under `key`, replacing any earlier one.
    func store(_ answer: GenerationResponse, for key: String)
    /// Writes whatever is pending and releases the store; throws the first write that failed.
    func finish() async throws
}

extension ResponseCache {
    public func finish() async throws {}

    /// The answer under `key`'s digest.
    package func answer(for key: ResponseCacheKey) -> GenerationResponse? { answer(for: key.digest) }
    /// Keeps `answer` under `key`'s digest.
    package func store(_ answer: GenerationResponse, for key: ResponseCacheKey) { store(answer, for: key.digest) }
}

/// What the response cache did for one call (`telemetry.calls[i].response_cache`; the raw value
/// is the status of `PipelineEvent.Kind.responseCache`).
package enum ResponseCacheStatus: String, Sendable, Hashable {
    /// Answered from the cache (or by an identical call in flight): no request, cost 0.
    case hit
    /// Not in the cache, and the answer was not stored (the call failed, or its answer is not kept).
    case miss
    /// Not in the cache; the call's answer was stored.
    case stored
}

/// A provider that can say where its requests go, so the response cache tells apart two
/// servers of one API (`--base-url`). Optional: a provider without it is keyed by name alone.
package protocol ProviderEndpoint {
    /// The endpoint's origin or base URL, without credentials, e.g. `https://api.openai.com/v1`.
    var endpoint: String { get }
}
