/// Answers a call from the response cache when it can (`EngineConfiguration.responseCache`), and
/// keeps each successful, complete answer for the next run. The outermost call unit: a hit
/// makes no request at all (no repair check, retry, rate limit or timeout), and what is stored is
/// the answer after `RepairUnit` accepted it, never a failed, interrupted or invalid one.
///
/// - The key (`ResponseCacheKey`) is taken of the call without the provider's context cache
///   (`CallInput.uncached`), with local files by their content.
/// - A hit: the answer with usage zero (no tokens were used, so it costs nothing) and no
///   deployment, a `response_cache_hit` event, with streaming its whole text as one
///   `text_delta`, and a `tool_call` event for each of its tool calls.
/// - Identical calls in flight share one request (`AnswersInFlight`): the others wait for it and
///   take its answer as a hit; if it fails, or its answer is one the cache does not keep (a
///   refusal), each makes its own call (if it was cancelled, one of them makes it for the rest).
/// - Kept: successful answers whose `finish_reason` is not `content_filter` (a refusal may not
///   repeat) — see `storable(_:)`.
package struct ResponseCacheUnit: ChainUnit {
    public let cache: any ResponseCache
    /// How file parts are opened for their content digest (the engine's `files`).
    public let files: FileResolver
    private let digests = FileDigests()
    private let flights = AnswersInFlight()

    public init(cache: any ResponseCache, files: FileResolver = FileResolver()) {
        self.cache = cache
        self.files = files
    }

    public func handle(_ input: CallInput, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        // A file that cannot be read for its digest: the call goes on uncached (its upload, or the
        // provider, reports the problem).
        guard let key = await key(for: input) else { return await next(input) }
        while true {
            if let answer = cache.answer(for: key) { return hit(answer, input) }
            switch await flights.answer(for: key, share: Self.storable, make: { await self.miss(input, key, next) }) {
            case .made(let result): return result
            case .shared(let answer): return hit(answer, input)
            case .sharedFailure: return await miss(input, key, next)   // the identical call failed: this one makes its own
            case .notShared: return await miss(input, key, next)   // a refusal (not kept, may not repeat): this one asks for itself
            case .again: continue   // it was cancelled, or ended first (its answer, if kept, is in the cache now)
            case .cancelled:
                return .failure(APIError(.cancelled, "the command was cancelled while it waited for work another command is making"))
            }
        }
    }

    private func hit(_ answer: GenerationResponse, _ input: CallInput) -> Result<GenerationResponse, APIError> {
        var answer = answer
        answer.usage = .zero
        // No deployment answered this call (an identical call's answer in flight names its own).
        answer.deployment = nil
        answer.provider = nil
        input.log.record(.responseCache(call: input.callIndex, status: ResponseCacheStatus.hit.rawValue))
        if input.streaming, !answer.text.isEmpty, input.provider.streaming != nil {
            input.log.record(.textDelta(call: input.callIndex, text: answer.text))
        }
        // As a live answer's (`ProviderCall`): each tool call is an event.
        for call in answer.toolCalls { input.log.record(.toolCall(call: input.callIndex, call)) }
        return .success(answer)
    }

    private func miss(_ input: CallInput, _ key: ResponseCacheKey, _ next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        input.log.record(.responseCache(call: input.callIndex, status: ResponseCacheStatus.miss.rawValue))
        let result = await next(input)
        if case .success(let answer) = result, Self.storable(answer) {
            cache.store(answer, for: key)
            input.log.record(.responseCache(call: input.callIndex, status: ResponseCacheStatus.stored.rawValue))
        }
        return result
    }

    /// Calls waiting for an identical call's answer (for tests).
    package func waiting(for key: ResponseCacheKey) async -> Int { flights.waiting(for: key) }

    /// Whether an answer is kept: any success but a content filter's refusal (and never the text
    /// of a broken stream, which is not a success).
    public static func storable(_ answer: GenerationResponse) -> Bool {
        answer.finishReason != "content_filter" && answer.finishReason != CallResponse.interrupted
    }

    /// The call's key: provider, endpoint, model, parts (files by content) and config.
    func key(for input: CallInput) async -> ResponseCacheKey? {
        let request = input.uncached ?? input.request
        let provider = input.provider
        let endpoint = (provider as? any ProviderEndpoint)?.endpoint ?? ""
        guard request.parts.contains(where: \.isFile) else {
            return ResponseCacheKey(provider: provider.providerName, endpoint: endpoint, request: request)
        }
        // The command's own parts at the same places say which local file each file part came from.
        let state = input.state
        let plan = state.plan
        let own: [APIPart]
        switch state.callPaths {
        case .planCalls: own = plan.calls.indices.contains(input.callIndex) ? plan.calls[input.callIndex].parts : []
        case .single: own = plan.fallbackCall?.parts ?? []
        }
        let original = plan.sharedParts + own
        var found: [Int: String] = [:]
        for (i, part) in request.parts.enumerated() where part.isFile {
            guard original.count == request.parts.count, case .filePlaceholder(let placeholder) = original[i] else {
                // A file the command names by the provider's reference: keyed by that reference.
                if case .filePlaceholder = part { return nil }
                continue
            }
            guard let digest = await digests.digest(ofPath: placeholder.path, resolver: files) else { return nil }
            found[i] = digest
        }
        return ResponseCacheKey(provider: provider.providerName, endpoint: endpoint, request: request, fileDigests: found)
    }
}

extension APIPart {
    /// A file reference or a local file.
    var isFile: Bool {
        switch self {
        case .fileRef, .filePlaceholder: true
        default: false
        }
    }
}
