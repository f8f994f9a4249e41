import CommandPipeline
import Foundation

extension ProviderRegistry {
    /// The built-in providers plus the HTTP ones (`openai`, `gemini`, `anthropic`).
    package static var withHTTPProviders: ProviderRegistry {
        var registry = ProviderRegistry.standard
        registry.register(OpenAIProvider.name) { options throws(APIError) in
            try OpenAIProvider.make(OpenAIConfiguration(options: options))
        }
        registry.register(GeminiProvider.name) { options throws(APIError) in
            try GeminiProvider.make(GeminiConfiguration(options: options))
        }
        registry.register(AnthropicProvider.name) { options throws(APIError) in
            try AnthropicProvider.make(AnthropicConfiguration(options: options))
        }
        return registry
    }

    /// The environment variables the HTTP providers read their keys from by default: what a
    /// program the CLI starts (`--hook-exec`) must not inherit.
    public static let defaultAPIKeyVariables = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"] + GeminiConfiguration.defaultKeyVariables
}

extension OpenAIConfiguration {
    /// A configuration from generic provider options: the key is read from the named
    /// environment variable; a server off this machine without a key is refused, and so are
    /// `user:password@` in the base URL and a key bound for plain http off this machine
    /// (unless `allowInsecureHTTP`). See "Secrets" in `Design/providers.md`.
    package init(options: ProviderOptions) throws(APIError) {
        let baseURL = try EndpointRules.baseURL(
            options.baseURL, fallback: OpenAIConfiguration.publicBaseURL, origin: false, example: "http://127.0.0.1:8000/v1")
        let variable = options.apiKeyEnvironmentVariable ?? "OPENAI_API_KEY"
        try EndpointRules.checkCapabilities(options.capabilities, supported: OpenAIConfiguration.supportedCapabilities, provider: OpenAIProvider.name)
        self.init(
            baseURL: baseURL, apiKey: APIKey.fromEnvironment(variable, in: options.environment), apiKeyVariable: variable,
            capabilities: options.capabilities.map { $0.union([.generation]) }, allowInsecureHTTP: options.allowInsecureHTTP)
        if let connections = options.maxConnectionsPerHost { maxConnectionsPerHost = connections }
        caFile = options.caFile.map { URL(fileURLWithPath: $0) }
        responseHeaders = options.responseHeaders
        try EndpointRules.checkReady(baseURL: baseURL, hasKey: apiKey != nil, problem: endpointProblem, variables: [variable])
    }
}

extension GeminiConfiguration {
    /// A configuration from generic provider options: the key is read from the named
    /// environment variable, else `GEMINI_API_KEY`, else `GOOGLE_API_KEY`; a server off this
    /// machine without a key is refused.
    package init(options: ProviderOptions) throws(APIError) {
        let baseURL = try EndpointRules.baseURL(
            options.baseURL, fallback: GeminiConfiguration.publicBaseURL, origin: true,
            example: "https://generativelanguage.googleapis.com or http://127.0.0.1:8000/gemini (the adapter appends /v1beta/…)")
        try EndpointRules.checkCapabilities(options.capabilities, supported: GeminiConfiguration.supportedCapabilities, provider: GeminiProvider.name)
        let variables = options.apiKeyEnvironmentVariable.map { [$0] } ?? GeminiConfiguration.defaultKeyVariables
        let found = variables.lazy.compactMap { name in APIKey.fromEnvironment(name, in: options.environment).map { (name, $0) } }.first
        self.init(baseURL: baseURL, apiKey: found?.1, apiKeyVariable: found?.0 ?? variables[0], capabilities: options.capabilities)
        allowInsecureHTTP = options.allowInsecureHTTP
        if let connections = options.maxConnectionsPerHost { maxConnectionsPerHost = connections }
        caFile = options.caFile.map { URL(fileURLWithPath: $0) }
        responseHeaders = options.responseHeaders
        try EndpointRules.checkReady(baseURL: baseURL, hasKey: apiKey != nil, problem: endpointProblem, variables: variables)
    }
}
