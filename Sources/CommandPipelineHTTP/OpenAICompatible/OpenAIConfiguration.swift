import CommandPipeline
import Foundation

/// How to reach an OpenAI-compatible Chat Completions server, and what it can do.
public struct OpenAIConfiguration: Sendable {
    public static let publicBaseURL = URL(string: "https://api.openai.com/v1")!

    /// The API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`.
    public var baseURL: URL
    public var apiKey: APIKey?
    /// The environment variable the key came from, named in authentication hints.
    public var apiKeyVariable: String
    /// Optional capabilities the server really has: `uploads` (Files API and `file` parts),
    /// `streaming` (SSE). The adapter conforms to exactly these.
    public var capabilities: Set<ProviderCapability>
    /// Per-request timeout.
    public var requestTimeout: TimeInterval
    /// `max_tokens` (most compatible servers) or `max_completion_tokens` (OpenAI reasoning models).
    public var maxTokensField: String
    /// `purpose` of uploaded files.
    public var uploadPurpose: String

    public init(
        baseURL: URL = OpenAIConfiguration.publicBaseURL, apiKey: APIKey? = nil, apiKeyVariable: String = "OPENAI_API_KEY",
        capabilities: Set<ProviderCapability>? = nil, requestTimeout: TimeInterval = 120, maxTokensField: String = "max_tokens",
        uploadPurpose: String = "user_data"
    ) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.apiKeyVariable = apiKeyVariable
        self.capabilities = capabilities ?? Self.defaultCapabilities(for: baseURL)
        self.requestTimeout = requestTimeout
        self.maxTokensField = maxTokensField
        self.uploadPurpose = uploadPurpose
    }

    /// OpenAI itself takes uploaded files; most compatible servers take only text and images.
    public static func defaultCapabilities(for baseURL: URL) -> Set<ProviderCapability> {
        baseURL.host == "api.openai.com" ? [.generation, .uploads, .streaming] : [.generation, .streaming]
    }

    /// Whether the server is on this machine (then a missing API key is fine).
    public var isLoopback: Bool {
        guard let host = baseURL.host?.lowercased() else { return false }
        return host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// The capabilities the OpenAI adapter can offer at all.
    public static let supportedCapabilities: Set<ProviderCapability> = [.generation, .uploads, .streaming]
}
