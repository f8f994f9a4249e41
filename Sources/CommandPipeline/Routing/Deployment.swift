/// One place a logical model can be served: a provider, an endpoint, a key and the provider's
/// own model name, with its share of traffic and its limits. Several keys for one provider are
/// several deployments. Read from a deployments file (`DeploymentsFile`, CLI `--deployments`)
/// or built in code; see `Design/routing.md`.
package struct Deployment: Sendable, Hashable {
    /// Unique across the file: names the deployment in telemetry, stats and events.
    public var name: String
    /// A provider registry name (`openai`, `anthropic`, `gemini`, `mock`).
    public var provider: String
    /// The endpoint; nil: the provider's public one.
    public var baseURL: String?
    /// The model name this deployment's provider knows.
    public var model: String
    /// The environment variable holding the key (never the key); nil: the provider's default.
    public var apiKeyVariable: String?
    /// Share of traffic among equally loaded healthy deployments (1 to 1,000).
    public var weight: Int
    /// This deployment's own limits (nil: none until the provider's headers say).
    public var requestsPerMinute: Int?
    public var tokensPerMinute: Int?
    /// Calls in flight at once on this deployment (nil: no cap of its own).
    public var maxConcurrency: Int?

    public init(
        name: String, provider: String, baseURL: String? = nil, model: String, apiKeyVariable: String? = nil, weight: Int = 1,
        requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, maxConcurrency: Int? = nil
    ) {
        self.name = name
        self.provider = provider
        self.baseURL = baseURL
        self.model = model
        self.apiKeyVariable = apiKeyVariable
        self.weight = weight
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.maxConcurrency = maxConcurrency
    }

    static let weightRange = 1...1_000
    static let rpmRange = 1...100_000_000
    static let tpmRange = 1...100_000_000_000
    static let concurrencyRange = 1...65_536
}

/// The circuit breaker's numbers, the same for every deployment of a router.
package struct BreakerSettings: Sendable, Hashable {
    /// Consecutive unhealthy failures (connection, 5xx, timeout) that open a deployment (1 to 1,000).
    public var failureThreshold: Int
    /// The first cooldown; each reopening doubles it, up to `maxCooldown` (1 ms to 1 hour).
    public var cooldown: Duration
    public var maxCooldown: Duration

    public init(failureThreshold: Int = 3, cooldown: Duration = .seconds(5), maxCooldown: Duration = .seconds(300)) {
        self.failureThreshold = failureThreshold
        self.cooldown = cooldown
        self.maxCooldown = maxCooldown
    }

    static let thresholdRange = 1...1_000
    static let cooldownRange = 1...3_600_000  // milliseconds
}

/// What a router serves: logical model names, each with its deployments, and the breaker's numbers.
package struct RouterConfiguration: Sendable, Hashable {
    /// Logical model name → its deployments, in the file's order.
    public var models: [String: [Deployment]]
    public var breaker: BreakerSettings

    public init(models: [String: [Deployment]], breaker: BreakerSettings = BreakerSettings()) {
        self.models = models
        self.breaker = breaker
    }

    /// Every deployment, by logical model name then file order.
    public var deployments: [Deployment] { models.keys.sorted().flatMap { models[$0]! } }

    /// Why this configuration cannot be used (names the place), or nil.
    public var problem: CatalogFile.Problem? {
        if models.isEmpty { return CatalogFile.Problem(path: "models", message: "no logical model: give at least one with its deployments") }
        var names: Set<String> = []
        for model in models.keys.sorted() {
            let list = models[model]!
            if list.isEmpty { return CatalogFile.Problem(path: "models.\(model)", message: "no deployments: give at least one") }
            for (i, d) in list.enumerated() {
                let path = "models.\(model)[\(i)]"
                if d.name.isEmpty || d.name.utf8.count > 256 { return CatalogFile.Problem(path: path + ".name", message: "a deployment name has 1 to 256 bytes") }
                if !names.insert(d.name).inserted {
                    return CatalogFile.Problem(path: path + ".name", message: "duplicate deployment name \"\(d.name)\": names are unique across the file")
                }
                if !Deployment.weightRange.contains(d.weight) { return CatalogFile.Problem(path: path + ".weight", message: "expected 1 to 1000, got \(d.weight)") }
                if let n = d.requestsPerMinute, !Deployment.rpmRange.contains(n) { return CatalogFile.Problem(path: path + ".rpm", message: "out of range: \(n)") }
                if let n = d.tokensPerMinute, !Deployment.tpmRange.contains(n) { return CatalogFile.Problem(path: path + ".tpm", message: "out of range: \(n)") }
                if let n = d.maxConcurrency, !Deployment.concurrencyRange.contains(n) {
                    return CatalogFile.Problem(path: path + ".max_concurrency", message: "out of range: \(n)")
                }
            }
        }
        if !BreakerSettings.thresholdRange.contains(breaker.failureThreshold) {
            return CatalogFile.Problem(path: "breaker.failures", message: "expected 1 to 1000, got \(breaker.failureThreshold)")
        }
        let range = Duration.milliseconds(1)...Duration.seconds(3600)
        if !range.contains(breaker.cooldown) { return CatalogFile.Problem(path: "breaker.cooldown_ms", message: "expected 1 to 3600000") }
        if !range.contains(breaker.maxCooldown) || breaker.maxCooldown < breaker.cooldown {
            return CatalogFile.Problem(path: "breaker.max_cooldown_ms", message: "expected from cooldown_ms to 3600000")
        }
        return nil
    }
}
