import CommandPipeline
import Foundation

/// Routing from Swift (issue 25): the same deployments file as the CLI's `--deployments`
/// (`Design/routing.md`), the same adapters, the same router.
extension EngineConfiguration {
    /// Routes the logical models of the deployments file at `path`: a call naming one of them
    /// goes to its deployments (weighted among the least loaded, breakers, limits learnt from the
    /// answers' headers), any other model to the engine's provider. Each deployment's adapter is
    /// made as the CLI makes it: its provider by name (`openai`, `anthropic`, `gemini`, `mock`),
    /// its `base_url`, its key from the variable `api_key_env` names in `environment`. The router
    /// runs on this configuration's `clock`.
    ///
    /// - Parameters:
    ///   - allowInsecureHTTP: let a key go over plain `http://` to a host off this machine.
    ///   - caFile: a PEM file of CAs trusted besides the system's store, for every deployment.
    ///   - maxConnectionsPerHost: connections each deployment's client may open to its host,
    ///     1–65,536 (nil: 64, as for any adapter).
    /// - Throws: `ConfigurationError` (field `router`) saying what is wrong and where in the file,
    ///   in the words `--deployments` uses: an unknown key, a duplicate deployment, an unset key
    ///   variable, an unknown provider, a bad URL.
    public mutating func routeDeployments(
        file path: String, environment: [String: String] = ProcessInfo.processInfo.environment, allowInsecureHTTP: Bool = false,
        caFile: URL? = nil, maxConnectionsPerHost: Int? = nil
    ) throws(ConfigurationError) {
        let loaded: RouterConfiguration
        switch DeploymentsFile.load(path, environment: environment) {
        case .success(let configuration): loaded = configuration
        case .failure(let problem): throw ConfigurationError(field: "router", message: "the deployments file \(path): \(problem)")
        }
        let options = ProviderOptions(
            environment: environment, allowInsecureHTTP: allowInsecureHTTP, maxConnectionsPerHost: maxConnectionsPerHost,
            caFile: caFile?.path)
        do {
            router = try DeploymentRouting.router(loaded, options: options, clock: clock)
        } catch {
            throw ConfigurationError(field: "router", message: "the deployments file \(path): \(error.message)")
        }
    }
}

/// The router of a deployments file, one adapter per deployment made through the registry with
/// `options` (its base URL and key variable the deployment's own; a relay for the headers its
/// answers carry): what `--deployments` and `EngineConfiguration.routeDeployments` both use.
package enum DeploymentRouting {
    package static func router(
        _ configuration: RouterConfiguration, options: ProviderOptions, clock: (any PipelineClock)? = nil
    ) throws(ConfigurationError) -> Router {
        var adapters: [String: any GenerationCapability] = [:]
        var relays: [String: ResponseHeadersRelay] = [:]
        for model in configuration.models.keys.sorted() {
            for (i, d) in (configuration.models[model] ?? []).enumerated() {
                var deploymentOptions = options
                deploymentOptions.baseURL = d.baseURL
                deploymentOptions.apiKeyEnvironmentVariable = d.apiKeyVariable
                let relay = ResponseHeadersRelay()
                deploymentOptions.responseHeaders = relay
                relays[d.name] = relay
                switch ProviderRegistry.withHTTPProviders.make(d.provider, options: deploymentOptions) {
                case .failure(let error):
                    throw ConfigurationError(field: "router.models.\(model)[\(i)]", message: "models.\(model)[\(i)] (\(d.name)): \(error.message)")
                case .success(let adapter): adapters[d.name] = adapter
                }
            }
        }
        if let clock { return try Router(configuration: configuration, adapters: adapters, relays: relays, clock: clock) }
        return try Router(configuration: configuration, adapters: adapters, relays: relays)
    }
}
