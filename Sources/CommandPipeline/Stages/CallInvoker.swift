/// Sends one request to the provider and normalises what comes back. This is the one
/// place a provider's `generate` is called, so policies for a single call live here.
public struct CallInvoker: Sendable {
    public struct Outcome: Sendable {
        public var result: Result<GenerationResponse, APIError>
        /// Attempts beyond the first.
        public var retries: Int
    }

    public init() {}

    public func invoke(_ request: GenerationRequest, callIndex: Int, provider: any GenerationCapability) async -> Outcome {
        do {
            return Outcome(result: .success(try await provider.generate(request)), retries: 0)
        } catch {
            let apiError = APIError(wrapping: error, provider: provider.providerName, context: "call \(callIndex) (\(request.model))")
            return Outcome(result: .failure(apiError), retries: 0)
        }
    }
}
