/// The one thing every provider adapter must do. Optional abilities are separate
/// protocols (`UploadsCapability`, `CachingCapability`, …) that an adapter conforms to
/// as well; the engine finds them with `as?`, never with a flag.
///
/// Throw `APIError` with a precise kind; anything else is wrapped as `provider_error`.
public protocol GenerationCapability: Sendable {
    /// The provider's name as it appears in telemetry and errors, e.g. `mock`, `openai`.
    var providerName: String { get }
    func generate(_ request: GenerationRequest) async throws -> GenerationResponse
}
