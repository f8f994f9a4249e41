/// The engine's provider when it has a router (`EngineConfiguration.router`): a call naming one
/// of the router's logical models goes to one of its deployments (each its own adapter, made
/// by the caller); any other model goes to `fallback`, the provider the run was given
/// (`--provider`), as without a router.
///
/// The call chain (retries, the engine's limiter, timeouts) runs around each attempt as
/// always; `ProviderCall` hands a routed call to `run(_:group:)`, which picks the deployment,
/// records `attempt_routed` (and `deployment_opened` / `deployment_closed` when this attempt
/// moved the breaker), sends the call with the deployment's model name through its adapter and
/// stamps the answer with the deployment.
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
    public var batch: (any BatchCapability)? { nil }
    /// The fallback's, for the models it serves; routed calls stream through their deployment's adapter.
    public var streaming: (any StreamingCapability)? { fallback.streaming }
    public var tokenCounting: (any TokenCountingCapability)? { fallback.tokenCounting }

    /// Outside the engine (no call chain): a routed model is sent to one deployment, without events.
    public func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        guard let group = router.group(for: request.model) else { return try await fallback.generate(request) }
        let (pick, _) = try await router.acquire(group, tokens: 0)
        let deployment = router.deployments[pick.index]
        var routed = request
        routed.model = deployment.model
        let start = router.clock.now
        let result = await send(routed, to: pick.index)
        _ = router.finish(pick, result: result, latency: router.clock.now - start)
        return try result.map { stamped($0, deployment) }.get()
    }

    /// The request through deployment `index`'s adapter.
    private func send(_ request: GenerationRequest, to index: Int) async -> Result<GenerationResponse, APIError> {
        let deployment = router.deployments[index]
        do {
            return .success(try await router.adapters[index].generate(request))
        } catch {
            return .failure(APIError(wrapping: error, provider: deployment.provider, context: "deployment '\(deployment.name)'"))
        }
    }

    private func stamped(_ response: GenerationResponse, _ deployment: Deployment) -> GenerationResponse {
        var response = response
        response.deployment = deployment.name
        response.provider = deployment.provider
        return response
    }

    /// One attempt of a routed call, from the call chain.
    func run(_ input: CallInput, group: Router.Group) async -> Result<GenerationResponse, APIError> {
        let tokens = group.countsTokens ? input.state.estimatedTokens(call: input.callIndex) : 0
        let pick: Router.Pick
        do {
            let (taken, waited) = try await router.acquire(group, tokens: tokens)
            pick = taken
            if waited > .zero { input.log.record(.waiting(call: input.callIndex, reason: .rateLimit, duration: waited)) }
        } catch {
            return .failure(input.cancelled())
        }
        let deployment = router.deployments[pick.index]
        input.log.record(.attemptRouted(call: input.callIndex, deployment: deployment.name, provider: deployment.provider, model: deployment.model))
        var request = input.request
        request.model = deployment.model
        let routed = input.routed(to: router.adapters[pick.index], request: request)
        let start = router.clock.now
        var result = await ProviderCall.run(routed)
        switch router.finish(pick, result: result, latency: router.clock.now - start) {
        case .opened(let cooldown): input.log.record(.deploymentOpened(deployment: deployment.name, cooldown: cooldown))
        case .closed(let openFor): input.log.record(.deploymentClosed(deployment: deployment.name, openFor: openFor))
        case nil: break
        }
        switch result {
        case .success(let response):
            result = .success(stamped(response, deployment))
        case .failure(var error):
            if error.message.hasPrefix("deployment '") == false { error.message = "deployment '\(deployment.name)': \(error.message)" }
            // One deployment's 429 slows that deployment (its limiter), not the run: while
            // another can take the call, the retry goes there at once instead of pausing everyone.
            if error.kind == .rateLimited, router.hasAlternative(to: pick.index, in: group) {
                error.kind = .providerError
                error.code = error.code ?? "rate_limited"
                error.retryable = true
                error.retryAfter = nil
            }
            result = .failure(error)
        }
        return result
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
