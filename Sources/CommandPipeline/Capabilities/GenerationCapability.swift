/// The one thing every provider adapter must do. Optional abilities are separate
/// protocols (`UploadsCapability`, `CachingCapability`, …); the engine reaches them only
/// through the accessors below, never by casting. Batch (`BatchCapability`, `.batch`) is
/// `CommandPipelineBatch`'s.
///
/// Each accessor defaults to "this value, when it conforms". An adapter whose abilities are
/// chosen at run time (the mock, a server declared with fewer features) conforms to every
/// protocol it can implement and answers `nil` from the accessors it was not given: one
/// type, one stored set, no generic switch that doubles with each new capability.
///
/// Throw `APIError` with a precise kind; anything else is wrapped as `provider_error`.
public protocol GenerationCapability: Sendable {
    /// The provider's name as it appears in telemetry and errors, e.g. `mock`, `openai`.
    var providerName: String { get }
    func generate(_ request: GenerationRequest) async throws -> GenerationResponse

    var uploads: (any UploadsCapability)? { get }
    var caching: (any CachingCapability)? { get }
    var streaming: (any StreamingCapability)? { get }
    var tokenCounting: (any TokenCountingCapability)? { get }
}

/// A provider of this package that implements `BatchCapability` (`CommandPipelineBatch`, where
/// `GenerationCapability.batch` is) and answers whether it was given batch: the mock and the
/// HTTP adapters, made with or without `.batch` in their capabilities. `ProviderCapability.probe`
/// reads it.
package protocol BatchOffering: Sendable {
    var offersBatch: Bool { get }
}

extension GenerationCapability {
    public var uploads: (any UploadsCapability)? { self as? any UploadsCapability }
    public var caching: (any CachingCapability)? { self as? any CachingCapability }
    public var streaming: (any StreamingCapability)? { self as? any StreamingCapability }
    public var tokenCounting: (any TokenCountingCapability)? { self as? any TokenCountingCapability }
}
