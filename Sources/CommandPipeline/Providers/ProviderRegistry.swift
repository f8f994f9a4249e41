import Foundation

/// Maps provider names to factories, so the CLI (or any caller) can pick an adapter by name.
package struct ProviderRegistry: Sendable {
    /// What a factory gets: the options a caller chose, as plain strings, plus the mock's settings.
    package typealias Factory = @Sendable (ProviderOptions) throws(APIError) -> any GenerationCapability

    private var factories: [String: Factory] = [:]

    public init() {}

    /// A registry with the built-in providers (`mock`).
    public static var standard: ProviderRegistry {
        var registry = ProviderRegistry()
        registry.register("mock") { options throws(APIError) in MockProvider.make(options.mock) }
        return registry
    }

    public mutating func register(_ name: String, factory: @escaping Factory) { factories[name] = factory }

    public var names: [String] { factories.keys.sorted() }

    public func make(_ name: String, options: ProviderOptions = ProviderOptions()) -> Result<any GenerationCapability, APIError> {
        guard let factory = factories[name] else {
            return .failure(APIError(.invalidCommand, "unknown provider '\(name)'; known providers: \(names.joined(separator: ", "))"))
        }
        do throws(APIError) { return .success(try factory(options)) } catch { return .failure(error) }
    }
}

/// Options for building a provider.
package struct ProviderOptions: Sendable {
    public var baseURL: String?
    /// The name of the environment variable holding the API key (never the key itself).
    public var apiKeyEnvironmentVariable: String?
    /// Where API keys are looked up.
    public var environment: [String: String]
    /// Optional capabilities a server was declared to have (for adapters whose servers differ).
    public var capabilities: Set<ProviderCapability>?
    /// Let an HTTP adapter send a key over plain `http://` to a host off this machine (`--allow-insecure-http`).
    public var allowInsecureHTTP: Bool
    /// Connections an HTTP adapter may open to one host: as many as requests can be in flight
    /// (a run's commands × calls), so the client never queues what the run lets go. nil: 64.
    public var maxConnectionsPerHost: Int?
    /// A PEM file of CA certificates an HTTP adapter trusts for `https://` besides the system's
    /// store (`--ca-file`): a private gateway, a test server. Never a way to skip verification.
    public var caFile: String?
    public var mock: MockConfiguration
    /// Where an HTTP adapter reports the headers of every answer (a router's deployment learns
    /// its limits from them, `Design/routing.md`); nil: nowhere.
    public var responseHeaders: ResponseHeadersRelay?
    public init(
        baseURL: String? = nil, apiKeyEnvironmentVariable: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment, capabilities: Set<ProviderCapability>? = nil,
        allowInsecureHTTP: Bool = false, maxConnectionsPerHost: Int? = nil, caFile: String? = nil, mock: MockConfiguration = MockConfiguration()
    ) {
        self.caFile = caFile
        self.maxConnectionsPerHost = maxConnectionsPerHost.map { min(max($0, 1), 65_536) }
        self.baseURL = baseURL
        self.apiKeyEnvironmentVariable = apiKeyEnvironmentVariable
        self.environment = environment
        self.capabilities = capabilities
        self.allowInsecureHTTP = allowInsecureHTTP
        self.mock = mock
    }
}
