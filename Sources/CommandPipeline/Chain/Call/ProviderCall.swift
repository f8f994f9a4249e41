/// The end of the call chain, and the one place a provider's `generate` or `stream` is
/// called. Every error comes back as an `APIError` whose path names the call.
///
/// Streaming (when asked for and the provider can): each piece is recorded as a
/// `text_delta`. A stream that breaks before its first piece fails like any call (and may
/// be retried); one that breaks after it fails for good, `retryable` false and code
/// `stream_interrupted`: the pieces already delivered stay in the log and in the outcome's
/// partial responses. A stream that ends without its final response is such a break.
public enum ProviderCall {
    public static let streamInterruptedCode = "stream_interrupted"

    @inline(__always)
    public static func run(_ input: CallInput) async -> Result<GenerationResponse, APIError> {
        let provider = input.provider
        if let routed = provider as? RoutedProvider, let group = routed.router.group(for: input.request.model) { return await routed.run(input, group: group) }
        do {
            if input.streaming, let streaming = provider.streaming {
                return .success(try await stream(input, streaming))
            }
            return .success(try await provider.generate(input.request))
        } catch {
            var error = APIError(wrapping: error, provider: provider.providerName, context: "call \(input.callIndex) (\(input.request.model))")
            // An adapter names the call's fields relative to it (`config.provider_options.stream`).
            if let path = error.path, !path.hasPrefix("plan.") { error.path = "\(input.path).\(path)" }
            return .failure(interrupted(error, input))
        }
    }

    /// `error` as the end of a call that has already streamed text: final (`retryable` false,
    /// code `stream_interrupted`), whatever broke it — the provider, the connection, or a unit
    /// around the call such as its timeout. Unchanged when nothing was streamed, or on cancellation.
    public static func interrupted(_ error: APIError, _ input: CallInput) -> APIError {
        guard error.kind != .cancelled, error.code != streamInterruptedCode, input.log.hasStreamed(call: input.callIndex) else { return error }
        var error = error
        error.retryable = false
        error.code = streamInterruptedCode
        error.message = "the stream of call \(input.callIndex) broke after part of the answer was delivered: \(error.message)"
        return error
    }

    private static func stream(_ input: CallInput, _ streaming: any StreamingCapability) async throws -> GenerationResponse {
        for try await chunk in streaming.stream(input.request) {
            switch chunk {
            case .delta(let text):
                if !text.isEmpty { input.log.record(.textDelta(call: input.callIndex, text: text)) }
            case .completed(let response):
                return response
            }
        }
        try Task.checkCancellation()
        throw APIError(
            .providerError, "the stream ended without a final response", provider: input.provider.providerName, retryable: true,
            code: "stream_truncated")
    }
}
