/// The built-in deterministic provider. `MockProvider.make` returns an adapter that
/// conforms to exactly the capabilities asked for, so probing with `as?` sees the truth.
public enum MockProvider {
    public static let name = "mock"

    /// A mock with the capabilities of `configuration` (generation is always there).
    public static func make(_ configuration: MockConfiguration = MockConfiguration()) -> any GenerationCapability {
        let core = MockCore(configuration: configuration)
        let has = configuration.capabilities
        return has.contains(.uploads) ? caching(core, has, CapabilityOn.self) : caching(core, has, CapabilityOff.self)
    }

    // Each step fixes one phantom type parameter of `MockAdapter`, so the 32 combinations
    // of optional capabilities are all reachable without writing 32 types.
    private static func caching<U: CapabilityFlag>(_ core: MockCore, _ has: Set<ProviderCapability>, _: U.Type) -> any GenerationCapability {
        has.contains(.caching) ? streaming(core, has, U.self, CapabilityOn.self) : streaming(core, has, U.self, CapabilityOff.self)
    }

    private static func streaming<U: CapabilityFlag, C: CapabilityFlag>(_ core: MockCore, _ has: Set<ProviderCapability>, _: U.Type, _: C.Type) -> any GenerationCapability {
        has.contains(.streaming)
            ? counting(core, has, U.self, C.self, CapabilityOn.self) : counting(core, has, U.self, C.self, CapabilityOff.self)
    }

    private static func counting<U: CapabilityFlag, C: CapabilityFlag, S: CapabilityFlag>(
        _ core: MockCore, _ has: Set<ProviderCapability>, _: U.Type, _: C.Type, _: S.Type
    ) -> any GenerationCapability {
        has.contains(.tokenCounting)
            ? batch(core, has, U.self, C.self, S.self, CapabilityOn.self) : batch(core, has, U.self, C.self, S.self, CapabilityOff.self)
    }

    private static func batch<U: CapabilityFlag, C: CapabilityFlag, S: CapabilityFlag, T: CapabilityFlag>(
        _ core: MockCore, _ has: Set<ProviderCapability>, _: U.Type, _: C.Type, _: S.Type, _: T.Type
    ) -> any GenerationCapability {
        has.contains(.batch)
            ? MockAdapter<U, C, S, T, CapabilityOn>(core: core) : MockAdapter<U, C, S, T, CapabilityOff>(core: core)
    }
}

/// The mock with one choice of optional capabilities, each a conditional conformance.
public struct MockAdapter<Uploads: CapabilityFlag, Caching: CapabilityFlag, Streaming: CapabilityFlag, Counting: CapabilityFlag, Batch: CapabilityFlag>:
    GenerationCapability
{
    let core: MockCore

    public var providerName: String { MockProvider.name }

    public func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        try await core.generate(request)
    }
}

extension MockAdapter: UploadsCapability where Uploads == CapabilityOn {
    public func upload(_ file: FileUpload) async throws -> FileReference { try await core.upload(file) }
}

extension MockAdapter: CachingCapability where Caching == CapabilityOn {
    public func createCache(_ request: CacheRequest) async throws -> CacheReference { try await core.createCache(request) }
    public func cache(forKey key: String) async throws -> CacheReference? { core.cache(forKey: key) }
}

extension MockAdapter: StreamingCapability where Streaming == CapabilityOn {
    public func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> { core.stream(request) }
}

extension MockAdapter: TokenCountingCapability where Counting == CapabilityOn {
    public func countTokens(_ request: GenerationRequest) async throws -> Int { try core.countTokens(request) }
}

extension MockAdapter: BatchCapability where Batch == CapabilityOn {
    public func generateBatch(_ requests: [GenerationRequest]) async throws -> [Result<GenerationResponse, APIError>] {
        var results: [Result<GenerationResponse, APIError>] = []
        for request in requests {
            do {
                results.append(.success(try await core.generate(request)))
            } catch {
                results.append(.failure(APIError(wrapping: error, provider: MockProvider.name, context: "batch request")))
            }
        }
        return results
    }
}
