/// The end of the call chain, and the one place a provider's `generate` or `stream` is
/// called. Every error comes back as an `APIError` whose path names the call.
///
/// Streaming (when asked for and the provider can): each piece is recorded as a
/// `text_delta`. A stream that breaks before its first piece fails like any call (and may
/// be retried); one that breaks after it fails for good, `retryable` false and code
/// `stream_interrupted`: the pieces already delivered stay in the log and in the outcome's
/// partial responses. A stream that ends without its final response is such a break.
package enum ProviderCall {
    public static let streamInterruptedCode = "stream_interrupted"

    @inline(__always)
    public static func run(_ input: CallInput) async -> Result<GenerationResponse, APIError> {
        let provider = input.provider
        // A chain without a `RoutingUnit` (the engine's has one when it has a router) routes here,
        // the same way: the attempt goes to a deployment, whose adapter is the provider then.
        // The dynamic type compared first: a failing `as?` of a class adapter to a struct takes
        // the runtime's bridging path (about 0.2 µs a call, on every call of every run).
        if type(of: provider) == RoutedProvider.self, let routed = provider as? RoutedProvider, let group = routed.router.group(for: input.request.model) {
            return await routed.run(input, group: group, next: Next(units: [], index: 0, terminal: ProviderCall.run))
        }
        do {
            if input.streaming, let streaming = provider.streaming {
                return .success(try await stream(input, streaming))
            }
            let response = try await provider.generate(input.request)
            for call in response.toolCalls { input.log.record(.toolCall(call: input.callIndex, call)) }
            return .success(response)
        } catch {
            var error = APIError(wrapping: error, provider: provider.providerName, context: "call \(input.callIndex) (\(input.request.model))")
            // An adapter names the call's fields relative to it (`config.provider_options.stream`).
            if let path = error.path, !path.hasPrefix("plan.") { error.path = planPath(ofRequestPart: path, input) ?? "\(input.path).\(path)" }
            return .failure(interrupted(error, input))
        }
    }

    /// Where in the plan the request part an adapter names (`parts[N]`, N counting the parts of
    /// the request it was given) sits: the shared parts come first when the request carries them
    /// (`plan.shared_parts[N]`), then the call's own (`plan.calls[i].parts[N - shared]`). Nil for
    /// another path, or a request whose parts are not the plan's (a repair adds turns).
    static func planPath(ofRequestPart path: String, _ input: CallInput) -> String? {
        guard path.hasPrefix("parts["), let close = path.firstIndex(of: "]"),
            let n = Int(path[path.index(path.startIndex, offsetBy: 6)..<close]), n >= 0
        else { return nil }
        let rest = path[path.index(after: close)...]
        let state = input.state
        guard state.calls.indices.contains(input.callIndex) else { return nil }
        let shared = state.sharedParts.count, own = state.calls[input.callIndex].parts.count
        switch input.request.parts.count {
        case shared + own where shared > 0: return n < shared ? "plan.shared_parts[\(n)]\(rest)" : "\(input.path).parts[\(n - shared)]\(rest)"
        case own: return "\(input.path).parts[\(n)]\(rest)"
        default: return nil
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
        var announced: Set<String> = []
        for try await chunk in streaming.stream(input.request) {
            switch chunk {
            case .delta(let text):
                if !text.isEmpty { input.log.record(.textDelta(call: input.callIndex, text: text)) }
            case .toolCall(let call):
                announced.insert(call.id)
                input.log.record(.toolCall(call: input.callIndex, call))
            case .completed(let response):
                for call in response.toolCalls where !announced.contains(call.id) { input.log.record(.toolCall(call: input.callIndex, call)) }
                return response
            }
        }
        try Task.checkCancellation()
        throw APIError(
            .providerError, "the stream ended without a final response", provider: input.provider.providerName, retryable: true,
            code: "stream_truncated")
    }
}
