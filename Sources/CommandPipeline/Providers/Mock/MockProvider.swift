import Synchronization

/// The built-in deterministic provider. `MockProvider.make` returns an adapter whose
/// capability accessors answer exactly the capabilities asked for.
public enum MockProvider {
    public static let name = "mock"

    /// A mock with every capability, no latency and no faults.
    public static func make() -> any GenerationCapability { make(MockConfiguration()) }

    /// A mock with the capabilities of `configuration` (generation is always there).
    package static func make(_ configuration: MockConfiguration) -> any GenerationCapability {
        MockAdapter(core: MockCore(configuration: configuration), capabilities: configuration.capabilities)
    }
}

/// The mock: it can do everything, and offers what its configuration chose.
/// A class: the engine hands its provider to every call, and copying an existential of a
/// three-field struct was three retains each time.
package final class MockAdapter: GenerationCapability, BatchOffering {
    package let core: MockCore
    /// The batch jobs submitted to this mock, kept in memory (`MockBatchService`, in
    /// `CommandPipelineBatch`, defines them; a batch directory keeps them in files instead).
    package let batchJobs = Mutex<[String: any Sendable]>([:])
    package let capabilities: Set<ProviderCapability>

    init(core: MockCore, capabilities: Set<ProviderCapability>) {
        self.core = core
        self.capabilities = capabilities
    }

    public var providerName: String { MockProvider.name }

    @inline(__always)
    public func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        try await core.generate(request)
    }

    public var uploads: (any UploadsCapability)? { capabilities.contains(.uploads) ? self : nil }
    public var caching: (any CachingCapability)? { capabilities.contains(.caching) ? self : nil }
    public var streaming: (any StreamingCapability)? { capabilities.contains(.streaming) ? self : nil }
    public var tokenCounting: (any TokenCountingCapability)? { capabilities.contains(.tokenCounting) ? self : nil }
    package var offersBatch: Bool { capabilities.contains(.batch) }
}

extension MockAdapter: UploadsCapability {
    public func upload(_ file: FileUpload) async throws -> FileReference { try await core.upload(file) }
}

extension MockAdapter: CachingCapability {
    public func createCache(_ context: GenerationRequest, key: String, ttlSeconds: Int) async throws -> CacheReference {
        try await core.createCache(CacheRequest(context, key: key, ttlSeconds: ttlSeconds))
    }
    public func cache(forKey key: String) async throws -> CacheReference? { core.cache(forKey: key) }
}

extension MockAdapter: StreamingCapability {
    public func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> { core.stream(request) }
}

extension MockAdapter: TokenCountingCapability {
    public func countTokens(_ request: GenerationRequest) async throws -> Int { try core.countTokens(request) }
}
