import CommandPipeline
import Foundation

/// How to reach Anthropic's Messages API (or a server that speaks it), and what it can do.
public struct AnthropicConfiguration: Sendable {
    public static let publicBaseURL = URL(string: "https://api.anthropic.com")!
    /// The `anthropic-version` header: one date, fixed by the API.
    public static let apiVersion = "2023-06-01"
    /// The `anthropic-beta` header of Files API requests (GA in the 2.x SDKs; harmless to send).
    public static let filesBeta = "files-api-2025-04-14"
    /// `max_tokens` when a command sets none: the API requires it on every request.
    public static let defaultMaxTokens = 4096

    /// The origin the API's paths hang from, e.g. `https://api.anthropic.com`, or a test
    /// server with a prefix such as `http://127.0.0.1:8000/anthropic`; the adapter appends `/v1/…`.
    public var baseURL: URL
    public var apiKey: APIKey?
    /// The environment variable the key came from, named in authentication hints.
    public var apiKeyVariable: String
    /// Optional capabilities the server really has. Anthropic has them all; compatible mock
    /// servers often have only messages and streaming. The adapter conforms to exactly these.
    public var capabilities: Set<ProviderCapability>
    /// Per-request timeout.
    public var requestTimeout: TimeInterval
    /// Connections the client may open to the server at once (`ProviderOptions.maxConnectionsPerHost`).
    public var maxConnectionsPerHost: Int = HTTPClient.defaultMaxConnectionsPerHost
    /// A PEM file of CA certificates trusted for `https://` besides the system's store
    /// (`--ca-file`, `ProviderOptions.caFile`): a private gateway, a test server.
    public var caFile: URL?
    /// Gets the headers of every answer (`ProviderOptions.responseHeaders`: a router's deployment).
    package var responseHeaders: ResponseHeadersRelay?
    /// `max_tokens` sent when the command has none.
    public var defaultMaxTokens: Int
    /// Send the key over plain http to a host off this machine (`--allow-insecure-http`).
    public var allowInsecureHTTP: Bool = false

    public init(
        baseURL: URL = AnthropicConfiguration.publicBaseURL, apiKey: APIKey? = nil, apiKeyVariable: String = "ANTHROPIC_API_KEY",
        capabilities: Set<ProviderCapability>? = nil, requestTimeout: TimeInterval = 300,
        defaultMaxTokens: Int = AnthropicConfiguration.defaultMaxTokens
    ) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.apiKeyVariable = apiKeyVariable
        self.capabilities = (capabilities ?? Self.supportedCapabilities).union([.generation])
        self.requestTimeout = requestTimeout
        self.defaultMaxTokens = max(1, defaultMaxTokens)
    }

    /// The capabilities the Anthropic adapter can offer; the public API has all of them.
    public static let supportedCapabilities: Set<ProviderCapability> = [.generation, .uploads, .caching, .streaming, .tokenCounting, .batch]

    /// Whether the server is on this machine (then a missing API key is fine).
    public var isLoopback: Bool { baseURL.host.map(EndpointRules.isLoopbackHost) ?? false }

    /// Why requests must not be sent (userinfo in the URL, a key over plain http off this machine).
    /// A base URL ending in `/v1` is refused too: it is the API's origin, the adapter appends `/v1/messages`.
    public var endpointProblem: APIError? {
        if let problem = EndpointRules.problem(
            baseURL: baseURL, hasKey: apiKey != nil, keyVariable: apiKeyVariable, allowInsecureHTTP: allowInsecureHTTP, provider: AnthropicProvider.name)
        {
            return problem
        }
        return EndpointRules.versionSuffixProblem(
            baseURL, version: "v1", appends: "/v1/messages", example: "https://api.anthropic.com", provider: AnthropicProvider.name)
    }

    /// `{base}/v1/{path}`.
    func endpoint(_ path: String) -> URL { baseURL.appendingPathComponent("v1").appendingPathComponent(path) }
}

extension AnthropicConfiguration {
    /// A configuration from generic provider options: `--base-url` is the API's origin (the
    /// adapter appends `/v1/…`), the key is read from `$ANTHROPIC_API_KEY` or the variable
    /// named by `--api-key-env`; a server off this machine without a key is refused.
    package init(options: ProviderOptions) throws(APIError) {
        let baseURL = try EndpointRules.baseURL(
            options.baseURL, fallback: AnthropicConfiguration.publicBaseURL, origin: true,
            example: "https://api.anthropic.com or http://127.0.0.1:8000/anthropic (the adapter appends /v1/…)")
        let variable = options.apiKeyEnvironmentVariable ?? "ANTHROPIC_API_KEY"
        try EndpointRules.checkCapabilities(options.capabilities, supported: AnthropicConfiguration.supportedCapabilities, provider: AnthropicProvider.name)
        self.init(
            baseURL: baseURL, apiKey: APIKey.fromEnvironment(variable, in: options.environment), apiKeyVariable: variable,
            capabilities: options.capabilities)
        allowInsecureHTTP = options.allowInsecureHTTP
        if let connections = options.maxConnectionsPerHost { maxConnectionsPerHost = connections }
        caFile = options.caFile.map { URL(fileURLWithPath: $0) }
        responseHeaders = options.responseHeaders
        try EndpointRules.checkReady(baseURL: baseURL, hasKey: apiKey != nil, problem: endpointProblem, variables: [variable])
    }
}
