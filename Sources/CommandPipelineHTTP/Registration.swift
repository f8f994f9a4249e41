import CommandPipeline
import Foundation

extension ProviderRegistry {
    /// The built-in providers plus the HTTP ones (`openai`, `anthropic`).
    public static var withHTTPProviders: ProviderRegistry {
        var registry = ProviderRegistry.standard
        registry.register(OpenAIProvider.name) { options throws(APIError) in
            try OpenAIProvider.make(OpenAIConfiguration(options: options))
        }
        registry.register(AnthropicProvider.name) { options throws(APIError) in
            try AnthropicProvider.make(AnthropicConfiguration(options: options))
        }
        return registry
    }
}

extension OpenAIConfiguration {
    /// A configuration from generic provider options: the key is read from the named
    /// environment variable; a server off this machine without a key is refused.
    public init(options: ProviderOptions) throws(APIError) {
        let baseURL: URL
        if let text = options.baseURL {
            guard let url = URL(string: text.hasSuffix("/") ? String(text.dropLast()) : text), let scheme = url.scheme,
                ["http", "https"].contains(scheme), url.host != nil
            else {
                throw APIError(.invalidCommand, "--base-url '\(text)' is not an http(s) URL; e.g. http://127.0.0.1:8000/v1")
            }
            baseURL = url
        } else {
            baseURL = OpenAIConfiguration.publicBaseURL
        }
        let variable = options.apiKeyEnvironmentVariable ?? "OPENAI_API_KEY"
        if let declared = options.capabilities {
            let unsupported = declared.subtracting(OpenAIConfiguration.supportedCapabilities)
            guard unsupported.isEmpty else {
                throw APIError(.invalidCommand, "the openai provider cannot offer \(unsupported.map(\.rawValue).sorted().joined(separator: ", ")); it supports generation, uploads, streaming")
            }
        }
        self.init(
            baseURL: baseURL, apiKey: APIKey.fromEnvironment(variable, in: options.environment), apiKeyVariable: variable,
            capabilities: options.capabilities.map { $0.union([.generation]) })
        if apiKey == nil && !isLoopback {
            throw APIError(.invalidCommand, "no API key: set $\(variable) (or name another variable with --api-key-env); keys are never taken as flags")
        }
    }
}
