/// A provider that can run many requests as one batch job. Results come back in
/// request order, each succeeding or failing on its own.
public protocol BatchCapability: Sendable {
    func generateBatch(_ requests: [GenerationRequest]) async throws -> [Result<GenerationResponse, APIError>]
}
