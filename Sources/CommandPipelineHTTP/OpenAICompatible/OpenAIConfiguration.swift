import CommandPipeline
import Foundation

/// How to reach an OpenAI-compatible Chat Completions server, and what it can do.
public struct OpenAIConfiguration: Sendable {
    public static let publicBaseURL = URL(string: "https://api.openai.com/v1")!

    /// The API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`.
    /// Never with `user:password@` (refused: the key travels in `Authorization`).
    public var baseURL: URL
    public var apiKey: APIKey?
    /// The environment variable the key came from, named in authentication hints.
    public var apiKeyVariable: String
    /// Optional capabilities the server really has: `uploads` (Files API and `file` parts),
    /// `streaming` (SSE), `batch` (Files API with `purpose=batch` and `/batches`). The adapter conforms to exactly these.
    public var capabilities: Set<ProviderCapability>
    /// Longest silence while waiting for the answer or between pieces of it (idle timeout).
    public var requestTimeout: TimeInterval
    /// Connections the client may open to the server at once (`ProviderOptions.maxConnectionsPerHost`).
    public var maxConnectionsPerHost: Int = HTTPClient.defaultMaxConnectionsPerHost
    /// A PEM file of CA certificates trusted for `https://` besides the system's store
    /// (`--ca-file`, `ProviderOptions.caFile`): a private gateway, a test server.
    public var caFile: URL?
    /// Gets the headers of every answer (`ProviderOptions.responseHeaders`: a router's deployment).
    package var responseHeaders: ResponseHeadersRelay?
    /// Longest time one request may take in all, however steadily the server trickles bytes
    /// (default 10 minutes). Past it the attempt fails with a retryable `timeout`.
    public var resourceTimeout: TimeInterval
    /// Largest response body read (default 64 MiB); a larger one, or a larger declared
    /// `Content-Length`, fails with `response_too_large` instead of filling memory.
    public var maxResponseBytes: Int
    /// Send the key over plain `http://` to a host that is not this machine. Off by default:
    /// anyone on the path could read the key. Loopback servers never need it.
    public var allowInsecureHTTP: Bool
    /// `max_tokens` (most compatible servers) or `max_completion_tokens` (OpenAI reasoning models).
    public var maxTokensField: String
    /// `purpose` of uploaded files.
    public var uploadPurpose: String

    public static let defaultResourceTimeout: TimeInterval = 600
    public static let defaultMaxResponseBytes = 64 << 20

    public init(
        baseURL: URL = OpenAIConfiguration.publicBaseURL, apiKey: APIKey? = nil, apiKeyVariable: String = "OPENAI_API_KEY",
        capabilities: Set<ProviderCapability>? = nil, requestTimeout: TimeInterval = 120,
        resourceTimeout: TimeInterval = OpenAIConfiguration.defaultResourceTimeout,
        maxResponseBytes: Int = OpenAIConfiguration.defaultMaxResponseBytes, allowInsecureHTTP: Bool = false,
        maxTokensField: String = "max_tokens", uploadPurpose: String = "user_data"
    ) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.apiKeyVariable = apiKeyVariable
        self.capabilities = capabilities ?? Self.defaultCapabilities(for: baseURL)
        self.requestTimeout = requestTimeout
        self.resourceTimeout = resourceTimeout
        self.maxResponseBytes = maxResponseBytes
        self.allowInsecureHTTP = allowInsecureHTTP
        self.maxTokensField = maxTokensField
        self.uploadPurpose = uploadPurpose
    }

    /// OpenAI itself takes uploaded files; most compatible servers take only text and images.
    public static func defaultCapabilities(for baseURL: URL) -> Set<ProviderCapability> {
        baseURL.host == "api.openai.com" ? [.generation, .uploads, .streaming, .batch] : [.generation, .streaming]
    }

    /// Whether the server is on this machine: `localhost`, an IPv4 address in 127.0.0.0/8,
    /// or `::1`. A name that merely starts with `127.` (`127.example.com`) is not.
    public var isLoopback: Bool { baseURL.host.map(EndpointRules.isLoopbackHost) ?? false }

    /// The base URL as messages show it (never with userinfo).
    public var displayBaseURL: String { DisplayURL.string(baseURL) }

    /// Why requests to `baseURL` must not be sent, if they must not: userinfo in the URL, or a
    /// key bound for plain http off this machine without `allowInsecureHTTP`. Checked when the
    /// provider is built from options (a usage error) and again before every request (for
    /// configurations built in code).
    public var endpointProblem: APIError? {
        EndpointRules.problem(
            baseURL: baseURL, hasKey: apiKey != nil, keyVariable: apiKeyVariable, allowInsecureHTTP: allowInsecureHTTP, provider: OpenAIProvider.name)
    }

    /// Image types Chat Completions reads (PNG, JPEG, WEBP, GIF): a `file_placeholder` of one of
    /// them is sent inline as an `image_url` data URL (`InlineFilesCapability`).
    public static let inlineImageTypes: Set<String> = ["image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif"]
    /// The largest image file sent inline: 20 MiB, OpenAI's limit for one image.
    public static let maxInlineImageBytes = 20 << 20

    /// The capabilities the OpenAI adapter can offer at all.
    public static let supportedCapabilities: Set<ProviderCapability> = [.generation, .uploads, .streaming, .batch]
}
