import CommandPipeline
import Foundation

/// How to reach the Gemini API (`v1beta`) or a server that speaks it.
public struct GeminiConfiguration: Sendable {
    public static let publicBaseURL = URL(string: "https://generativelanguage.googleapis.com")!
    /// The environment variables the key is read from, in order, when none is named.
    public static let defaultKeyVariables = ["GEMINI_API_KEY", "GOOGLE_API_KEY"]

    /// The origin the API's paths hang from, e.g. `https://generativelanguage.googleapis.com`
    /// or `http://127.0.0.1:8000/gemini`; the adapter appends `/v1beta/…` and `/upload/v1beta/…`.
    public var baseURL: URL
    public var apiKey: APIKey?
    /// The environment variable the key came from, named in authentication hints.
    public var apiKeyVariable: String
    /// Per-request timeout.
    public var requestTimeout: TimeInterval
    /// Connections the client may open to the server at once (`ProviderOptions.maxConnectionsPerHost`).
    public var maxConnectionsPerHost: Int = HTTPClient.defaultMaxConnectionsPerHost
    /// A PEM file of CA certificates trusted for `https://` besides the system's store
    /// (`--ca-file`, `ProviderOptions.caFile`): a private gateway, a test server.
    public var caFile: URL?
    /// Gets the headers of every answer (`ProviderOptions.responseHeaders`: a router's deployment).
    package var responseHeaders: ResponseHeadersRelay?
    /// After an upload, the file is polled until `ACTIVE`: first after `pollInterval`, then
    /// each wait doubled up to `maxPollInterval`, for at most `maxProcessingWait` in all.
    public var pollInterval: Duration
    public var maxPollInterval: Duration
    public var maxProcessingWait: Duration
    /// Waits between polls go through this clock (tests pass a fast one).
    public var clock: any PipelineClock
    /// Caches are named `<prefix><key>` (`displayName`), so a later run finds them by key.
    public var cacheNamePrefix: String
    /// Send the key over plain http to a host off this machine (`--allow-insecure-http`).
    public var allowInsecureHTTP: Bool = false
    /// The capabilities the adapter offers: all of them by default (Gemini has them all); fewer
    /// for a server that speaks only part of the API (a mock, a proxy). Generation is always there.
    public var capabilities: Set<ProviderCapability>

    public init(
        baseURL: URL = GeminiConfiguration.publicBaseURL, apiKey: APIKey? = nil, apiKeyVariable: String = "GEMINI_API_KEY",
        capabilities: Set<ProviderCapability>? = nil, requestTimeout: TimeInterval = 300, pollInterval: Duration = .milliseconds(500), maxPollInterval: Duration = .seconds(5),
        maxProcessingWait: Duration = .seconds(300), clock: (any PipelineClock)? = nil, cacheNamePrefix: String = "commandpipeline-"
    ) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.apiKeyVariable = apiKeyVariable
        self.capabilities = (capabilities ?? Self.supportedCapabilities).union([.generation])
        self.requestTimeout = requestTimeout
        self.pollInterval = pollInterval
        self.maxPollInterval = maxPollInterval
        self.maxProcessingWait = maxProcessingWait
        self.clock = clock ?? SystemClock()
        self.cacheNamePrefix = cacheNamePrefix
    }

    /// Whether the server is on this machine (then a missing API key is fine).
    public var isLoopback: Bool { baseURL.host.map(EndpointRules.isLoopbackHost) ?? false }

    /// Why requests must not be sent (userinfo in the URL, a key over plain http off this machine).
    /// A base URL ending in `/v1beta` is refused too: it is the API's origin, the adapter appends `/v1beta/…`.
    public var endpointProblem: APIError? {
        if let problem = EndpointRules.problem(
            baseURL: baseURL, hasKey: apiKey != nil, keyVariable: apiKeyVariable, allowInsecureHTTP: allowInsecureHTTP, provider: GeminiProvider.name)
        {
            return problem
        }
        return EndpointRules.versionSuffixProblem(
            baseURL, version: "v1beta", appends: "/v1beta/…", example: "https://generativelanguage.googleapis.com", provider: GeminiProvider.name)
    }

    /// The capabilities the Gemini adapter can offer; the public API has all of them.
    public static let supportedCapabilities: Set<ProviderCapability> = [.generation, .uploads, .caching, .streaming, .tokenCounting, .batch]

    /// Largest batch job input sent inline (20 MB, the API's limit); a larger one goes as a file.
    public var batchInlineBytes = 20_000_000
    /// Requests per batch job: the API states no count limit, only bytes (⚠); this bounds memory.
    public static let batchMaxRequests = 100_000

    /// `{base}/v1beta/{path}` (or `/upload/v1beta/…`), the path already escaped.
    func url(_ path: String, upload: Bool = false, query: String? = nil) -> URL {
        var base = baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        let text = base + (upload ? "/upload/v1beta/" : "/v1beta/") + path + (query.map { "?" + $0 } ?? "")
        return URL(string: text)!
    }

    /// The model's resource path, `models/<escaped name>` (a `models/` or `tunedModels/` prefix is
    /// kept); the name itself is escaped whole, `/` included, so it can never leave its collection.
    static func modelPath(_ model: String) -> String {
        for collection in ["models/", "tunedModels/"] where model.hasPrefix(collection) {
            return collection + escape(String(model.dropFirst(collection.count)), keepingSlashes: false)
        }
        return "models/" + escape(model, keepingSlashes: false)
    }

    /// The path of a file the server named (`files/{id}`), its id escaped as ONE path segment
    /// (`/` included), so a name like `files/../../x` cannot leave the collection; nil for a name
    /// outside `files/`, or an id that is empty or only dots (a `.`/`..` segment).
    static func filePath(_ name: String) -> String? {
        guard name.hasPrefix("files/") else { return nil }
        let id = String(name.dropFirst("files/".count))
        guard !id.isEmpty, id.contains(where: { $0 != "." }) else { return nil }
        return "files/" + escape(id, keepingSlashes: false)
    }

    /// Escapes a resource name for a URL path: unreserved characters (and `/` when kept) stay.
    static func escape(_ name: String, keepingSlashes: Bool = true) -> String {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~" + (keepingSlashes ? "/" : ""))
        return name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name
    }
}
