/// The built-in deterministic provider. `MockProvider.make` returns an adapter whose
/// capability accessors answer exactly the capabilities asked for.
public enum MockProvider {
    public static let name = "mock"

    /// A mock with every capability, no latency and no faults.
    public static func make() -> any GenerationCapability { make(MockConfiguration()) }

    /// A mock with the capabilities of `configuration` (generation is always there).
    package static func make(_ configuration: MockConfiguration) -> any GenerationCapability {
        MockAdapter(core: MockCore(configuration: configuration), batches: MockBatchService(configuration: configuration), capabilities: configuration.capabilities)
    }
}

/// The mock: it can do everything, and offers what its configuration chose.
/// A class: the engine hands its provider to every call, and copying an existential of a
/// three-field struct was three retains each time.
final class MockAdapter: GenerationCapability {
    let core: MockCore
    let batches: MockBatchService
    let capabilities: Set<ProviderCapability>

    init(core: MockCore, batches: MockBatchService, capabilities: Set<ProviderCapability>) {
        self.core = core
        self.batches = batches
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
    public var batch: (any BatchCapability)? { capabilities.contains(.batch) ? self : nil }
}

extension MockAdapter: UploadsCapability {
    public func upload(_ file: FileUpload) async throws -> FileReference { try await core.upload(file) }
}

extension MockAdapter: CachingCapability {
    public func createCache(_ request: CacheRequest) async throws -> CacheReference { try await core.createCache(request) }
    public func cache(forKey key: String) async throws -> CacheReference? { core.cache(forKey: key) }
}

extension MockAdapter: StreamingCapability {
    public func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> { core.stream(request) }
}

extension MockAdapter: TokenCountingCapability {
    public func countTokens(_ request: GenerationRequest) async throws -> Int { try core.countTokens(request) }
}
