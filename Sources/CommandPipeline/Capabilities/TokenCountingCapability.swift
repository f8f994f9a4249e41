/// A provider that can count a request's prompt tokens without generating.
public protocol TokenCountingCapability: Sendable {
    func countTokens(_ request: GenerationRequest) async throws -> Int
}
