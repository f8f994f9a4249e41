/// The engine's provider when it has a router (`EngineConfiguration.router`): a call naming one
/// of the router's logical models goes to one of its deployments (each its own adapter, made
/// by the caller); any other model goes to `fallback`, the provider the run was given
/// (`--provider`), as without a router.
///
/// In the engine, `RoutingUnit` routes each attempt (`run(_:group:next:)`): it picks the
/// deployment (waiting, recorded before it starts, while none can take the call), records
/// `attempt_routed` (and `deployment_opened` / `deployment_closed` when this attempt moved the
/// breaker), sends the call with the deployment's model name through the rest of the chain —
/// the per-call timeout, then the deployment's adapter — and stamps the answer with the deployment.
///
/// Nothing is stored on a provider for a routed model: this provider offers neither uploads
/// nor context caches, so every call carries its files and shared context inline and any
/// deployment can answer any call (a retry can move). The providers' automatic prefix caching
/// still works on each deployment.
package struct RoutedProvider: GenerationCapability {
    public let router: Router
    public let fallback: any GenerationCapability

    public init(router: Router, fallback: any GenerationCapability) {
        self.router = router
        self.fallback = fallback
    }

    public var providerName: String { fallback.providerName }
    public var uploads: (any UploadsCapability)? { nil }
    public var caching: (any CachingCapability)? { nil }
    /// Streams a routed model through one of its deployments (`RoutedStreaming`), any other
    /// model through the fallback's streaming; nil when the fallback cannot stream.
    public var streaming: (any StreamingCapability)? { fallback.streaming.map { RoutedStreaming(provider: self, fallback: $0) } }
    public var tokenCounting: (any TokenCountingCapability)? { fallback.tokenCounting }

    /// Outside the engine (no call chain): a routed model is sent to one deployment, without events.
    public func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        guard let group = router.group(for: request.model) else { return try await fallback.generate(request) }
        let pick = try await router.acquire(group, tokens: 0)
        var routed = request
        routed.model = router.deployments[pick.index].model
        let result = await send(routed, to: pick.index)
        _ = router.finish(pick, result: result)
        return try stamped(result, pick.index).get()
    }

    /// The request through deployment `index`'s adapter.
    private func send(_ request: GenerationRequest, to index: Int) async -> Result<GenerationResponse, APIError> {
        do {
            return .success(try await router.adapters[index].generate(request))
        } catch {
            return .failure(failure(error, index))
        }
    }

    /// `error` of deployment `index`, as an `APIError` naming it.
    func failure(_ error: any Error, _ index: Int) -> APIError {
        let deployment = router.deployments[index]
        return APIError(wrapping: error, provider: deployment.provider, context: "deployment '\(deployment.name)'")
    }

    /// `result` with its response stamped with deployment `index`, in place (consumed, not copied).
    func stamped(_ result: consuming Result<GenerationResponse, APIError>, _ index: Int) -> Result<GenerationResponse, APIError> {
        switch consume result {
        case .success(var response):
            response.deployment = router.deployments[index].name
            response.provider = router.deployments[index].provider
            return .success(response)
        case .failure(let error):
            return .failure(error)
        }
    }

    /// One attempt of a routed call, from the call chain (`RoutingUnit`): `next` is the rest of
    /// the chain inside the router — the per-call timeout, then the deployment's adapter — so an
    /// attempt that times out is a failure of its deployment (it counts toward opening the
    /// breaker), and the wait for a deployment is bounded by the command's deadline alone.
    func run(_ input: CallInput, group: Router.Group, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        await Self.run(input, router: router, group: group, next: next)
    }

    /// `run(_:group:next:)` with `router` (the router alone routes: the fallback is not asked).
    static func run(
        _ input: CallInput, router: Router, group: Router.Group, next: Next<CallInput, Result<GenerationResponse, APIError>>
    ) async -> Result<GenerationResponse, APIError> {
        let tokens = group.countsTokens ? input.state.estimatedTokens(call: input.callIndex) : 0
        let pick: Router.Pick
        // Each wait is recorded before it starts (a `waiting` event, reason `deployment`, with
        // its planned length; the polls that follow a first wait are the same wait), and the
        // command's lender hears it start and end (the progress line's "waiting on a deployment").
        var waiting = false
        var lender: (any BackoffLender)?
        do {
            pick = try await router.acquire(group, tokens: tokens) { wait in
                if !waiting {
                    waiting = true
                    lender = BackoffScope.lender
                    lender?.deploymentWaitStarted()
                } else if wait == Router.pollInterval {
                    return
                }
                input.log.record(.waiting(call: input.callIndex, reason: PipelineEvent.WaitReason.deployment.rawValue, duration: wait))
            }
        } catch {
            if waiting { lender?.deploymentWaitEnded() }
            return .failure(input.cancelled())
        }
        if waiting { lender?.deploymentWaitEnded() }
        let i = pick.index
        // Read in place, not copied out: a `Deployment` holds five strings.
        // `attempt_routed` is for readers of the log only (the fold ignores it): built only when read.
        if input.log.isObserved {
            input.log.record(.attemptRouted(call: input.callIndex, deployment: router.deployments[i].name, provider: router.deployments[i].provider, model: router.deployments[i].model))
        }
        let result = await next(input.routed(to: router.adapters[i], model: router.deployments[i].model))
        switch router.finish(pick, result: result) {
        case .opened(let cooldown): input.log.record(.deploymentOpened(deployment: router.deployments[i].name, cooldown: cooldown))
        case .closed(let openFor): input.log.record(.deploymentClosed(deployment: router.deployments[i].name, openFor: openFor))
        case nil: break
        }
        switch consume result {
        case .success(var response):
            response.deployment = router.deployments[i].name
            response.provider = router.deployments[i].provider
            return .success(response)
        case .failure(var error):
            let deployment = router.deployments[i]
            if error.message.hasPrefix("deployment '") == false { error.message = "deployment '\(deployment.name)': \(error.message)" }
            // One deployment's 429 slows that deployment (its limiter), not the run: while
            // another can take the call, the retry goes there at once instead of pausing everyone.
            if error.kind == .rateLimited, router.hasAlternative(to: pick.index, in: group) {
                error.kind = .providerError
                error.code = error.code ?? "rate_limited"
                error.retryable = true
                error.retryAfter = nil
            }
            return .failure(error)
        }
    }
}

/// Files some deployment takes only inline (OpenAI's images): the upload stage sees the routed
/// provider, not the deployment a call will go to, so a type any adapter of the run — a
/// deployment's or the fallback's — takes only inline goes inline for every call, capped by the
/// smallest such limit, so it fits wherever the call goes. A routed run uploads nothing (see
/// above): inline is the only way such a file is sent at all, as the unrouted adapter sends it.
extension RoutedProvider: InlineFilesCapability {
    public func inlineLimit(for mimeType: String) -> Int? {
        var limit = fallback.inlineFiles?.inlineLimit(for: mimeType)
        for adapter in router.adapters {
            guard let own = adapter.inlineFiles?.inlineLimit(for: mimeType) else { continue }
            limit = min(limit ?? own, own)
        }
        return limit
    }
}

/// `RoutedProvider.streaming`, for use outside the engine (in the engine, `RoutingUnit` routes
/// each attempt and the deployment's own streaming is used): a routed model's stream goes to
/// one deployment, chosen, waited for and accounted (breaker, limiter, stats) as a call of
/// `generate` is; its chunks come through as the deployment sends them, the final response
/// stamped with the deployment. A deployment whose adapter cannot stream answers with one
/// final chunk. Any other model streams through the fallback's streaming.
package struct RoutedStreaming: StreamingCapability {
    package let provider: RoutedProvider
    let fallback: any StreamingCapability

    package func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> {
        let provider = self.provider, router = provider.router
        guard let group = router.group(for: request.model) else { return fallback.stream(request) }
        return AsyncThrowingStream { continuation in
            let task = Task {
                let pick: Router.Pick
                do { pick = try await router.acquire(group, tokens: 0) } catch {
                    continuation.finish(throwing: error)
                    return
                }
                let deployment = router.deployments[pick.index]
                var routed = request
                routed.model = deployment.model
                var result: Result<GenerationResponse, APIError>
                var stopped = false
                if let streaming = router.adapters[pick.index].streaming {
                    result = .failure(APIError(.providerError, "deployment '\(deployment.name)': the stream ended without a final response", provider: deployment.provider, retryable: true, code: "stream_truncated"))
                    do {
                        for try await chunk in streaming.stream(routed) {
                            if case .completed(let response) = chunk {
                                result = .success(response)
                                break
                            }
                            // The consumer stopped reading: stop reading the deployment too.
                            if case .terminated = continuation.yield(chunk) {
                                stopped = true
                                break
                            }
                        }
                    } catch {
                        result = .failure(provider.failure(error, pick.index))
                    }
                } else {
                    do { result = .success(try await router.adapters[pick.index].generate(routed)) } catch { result = .failure(provider.failure(error, pick.index)) }
                }
                // A stream its consumer stopped reading (or whose task was cancelled) ended
                // because of the consumer, not the deployment: a cancel, which feeds no breaker.
                if case .failure(let error) = result, error.kind != .cancelled, stopped || Task.isCancelled {
                    result = .failure(APIError(.cancelled, "deployment '\(deployment.name)': the stream's consumer stopped reading", provider: deployment.provider))
                }
                _ = router.finish(pick, result: result)
                switch provider.stamped(result, pick.index) {
                case .success(let response):
                    continuation.yield(.completed(response))
                    continuation.finish()
                case .failure(let error):
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Routes each attempt of a call that names one of the router's logical models
/// (`RoutedProvider.run`); any other call goes straight on. The engine puts it after the rate
/// limits and before the per-call timeout (`EngineConfiguration.callChain`), when it has a
/// router: the timeout bounds the attempt on its deployment, not the wait for one.
package struct RoutingUnit: ChainUnit {
    /// The engine's router, whose `RoutedProvider` is the calls' provider: known here, a call
    /// needs no cast of its provider. nil: the router of the call's provider, found per call.
    let router: Router?

    package init() { router = nil }

    /// For an engine whose provider is `RoutedProvider(router: router, …)`.
    package init(router: Router) { self.router = router }

    package func handle(_ input: CallInput, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        guard let router = router ?? (input.provider as? RoutedProvider)?.router, let group = router.group(for: input.request.model) else { return await next(input) }
        return await RoutedProvider.run(input, router: router, group: group, next: next)
    }
}

/// Where a routed run's requests go, for the response cache's key (`Design/response-cache.md`):
/// the fallback's endpoint and every deployment — logical model, name, provider, where it sends
/// (its adapter's endpoint, else its `base_url`) and the provider's model — sorted, as one JSON
/// text. Two deployments files that could answer a call differently are two keys (the key is
/// hashed: its length does not matter). Conservative: any change of the file is a new key.
extension RoutedProvider: ProviderEndpoint {
    public var endpoint: String {
        var sends: [String: String] = [:]
        for (i, d) in router.deployments.enumerated() {
            sends[d.name] = (router.adapters[i] as? any ProviderEndpoint)?.endpoint ?? d.baseURL ?? ""
        }
        var rows: [[String]] = []
        for (logical, list) in router.configuration.models {
            for d in list { rows.append([logical, d.name, d.provider, sends[d.name] ?? d.baseURL ?? "", d.model]) }
        }
        rows.sort { $0.lexicographicallyPrecedes($1) }
        let value: JSONValue = [
            "fallback": .string((fallback as? any ProviderEndpoint)?.endpoint ?? ""),
            "deployments": .array(rows.map { .array($0.map { .string($0) }) }),
        ]
        return JSONSerializer.serialize(value)
    }
}
