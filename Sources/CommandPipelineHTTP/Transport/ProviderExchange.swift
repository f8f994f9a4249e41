import CommandPipeline
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What a provider says about a failed exchange: its own reading of an error answer (status,
/// headers, body) and the shared reading of transport failures and redirects (`TransportErrors`).
protocol ProviderErrorMapping: Sendable {
    func error(status: Int, headers: [String: String], body: Data, endpoint: String) -> APIError
    var transport: TransportErrors { get }
}

extension ProviderErrorMapping {
    /// Transport failures and redirects, as every adapter reports them.
    func error(transport failure: any Error, endpoint: String) -> APIError {
        transport.error(transport: failure, endpoint: endpoint)
    }
}

/// The one provider plumbing: every request an adapter, its batch client or the webhook sink
/// makes is built and sent here. One JSON request builder; the endpoint rules (`EndpointRules`,
/// folded into `endpointProblem`) checked before every request, so nothing — no key — leaves
/// when they fail; the key's headers attached only when they pass; one 2xx check; an error
/// answer's body read up to `maxErrorBody` and handed to the provider's mapping (which quotes it
/// through `ServerText`: redacted, then cut); transport failures mapped once (`TransportErrors`).
struct ProviderExchange<Errors: ProviderErrorMapping>: Sendable {
    let client: HTTPClient
    let errors: Errors
    /// Why requests must not be sent (userinfo in the base URL, a key bound for plain http off
    /// this machine, a misplaced version suffix); nil when they may.
    let endpointProblem: APIError?
    /// The headers that carry the key (`Authorization`, `x-api-key`, `x-goog-api-key`).
    let credentials: [String: String]
    /// Headers every request carries (e.g. `anthropic-version`).
    let common: [String: String]
    let requestTimeout: TimeInterval

    /// The most of an error answer's body read from a stream (its head says what went wrong).
    static var maxErrorBody: Int { 1 << 20 }

    init(
        client: HTTPClient, errors: Errors, endpointProblem: APIError?, credentials: [String: String], common: [String: String] = [:],
        requestTimeout: TimeInterval
    ) {
        self.client = client
        self.errors = errors
        self.endpointProblem = endpointProblem
        self.credentials = endpointProblem == nil ? credentials : [:]
        self.common = common
        self.requestTimeout = requestTimeout
    }

    /// A request to `url` with the timeout, the common headers and the key; with `json`, the
    /// body serialised and `Content-Type: application/json`.
    func request(_ url: URL, method: String = "POST", json: JSONValue? = nil) -> URLRequest {
        var request = bare(url, method: method)
        for (name, value) in credentials { request.setValue(value, forHTTPHeaderField: name) }
        if let json {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            var body: [UInt8] = []
            JSONSerializer.write(json, to: &body)
            request.httpBody = Data(body)
        }
        return request
    }

    /// A request without the key (for a URL that authorises itself, such as an upload session's).
    func bare(_ url: URL, method: String = "POST") -> URLRequest {
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = requestTimeout
        for (name, value) in common { request.setValue(value, forHTTPHeaderField: name) }
        return request
    }

    /// Sends `request` and returns its 2xx answer; anything else throws the mapped error.
    func send(_ request: URLRequest) async throws(APIError) -> HTTPClient.Response {
        try await exchange(request) { try await client.send($0) }
    }

    /// Sends `request` with its body streamed from `file`; a 2xx answer or the mapped error.
    func upload(_ request: URLRequest, fromFile file: URL) async throws(APIError) -> HTTPClient.Response {
        try await exchange(request) { try await client.upload($0, fromFile: file) }
    }

    /// Sends a multipart upload (`HTTPClient.upload(_:multipart:)`); a 2xx answer or the mapped
    /// error. A file that cannot be read or changes size while it is sent is `upload_failed`.
    func upload(_ request: URLRequest, multipart body: MultipartBody) async throws(APIError) -> HTTPClient.Response {
        try await streamedUpload(request) { try await client.upload($0, multipart: body) }
    }

    /// Sends `file` as the whole body, streamed from its opened descriptor
    /// (`HTTPClient.upload(_:opened:)`); a 2xx answer or the mapped error. A file that cannot be
    /// read or changes size while it is sent is `upload_failed`.
    func upload(_ request: URLRequest, opened file: OpenedFile) async throws(APIError) -> HTTPClient.Response {
        try await streamedUpload(request) { try await client.upload($0, opened: file) }
    }

    private func streamedUpload(
        _ request: URLRequest, _ send: @escaping (URLRequest) async throws -> HTTPClient.Response
    ) async throws(APIError) -> HTTPClient.Response {
        let provider = errors.transport.providerName
        return try await exchange(request) { request in
            do {
                return try await send(request)
            } catch let failure as OpenedFile.Failure {
                throw APIError(.uploadFailed, failure.message, provider: provider)
            }
        }
    }

    private func exchange(
        _ request: URLRequest, _ body: (URLRequest) async throws -> HTTPClient.Response
    ) async throws(APIError) -> HTTPClient.Response {
        if let endpointProblem { throw endpointProblem }
        // The endpoint as errors show it is made only for an error (~3% of a request's CPU otherwise).
        let response: HTTPClient.Response
        do {
            response = try await body(request)
        } catch {
            throw errors.transport.error(transport: error, endpoint: DisplayURL.endpoint(request.url))
        }
        guard (200..<300).contains(response.status) else {
            throw errors.error(status: response.status, headers: response.headers, body: response.body, endpoint: DisplayURL.endpoint(request.url))
        }
        return response
    }

    /// Starts a streaming request and returns once a 2xx head with an event stream arrives.
    /// An error answer is read (up to `maxErrorBody`) and mapped. A 2xx that is not an event
    /// stream (`Content-Type` other than `text/event-stream`: a server without streaming that
    /// answers in one piece, a proxy's page) fails once, not retried: another attempt gets the same.
    /// Transport failures are thrown as they are, for the caller to map with its partial usage.
    func stream(_ request: URLRequest) async throws -> HTTPClient.StreamedResponse {
        if let endpointProblem { throw endpointProblem }
        let response = try await client.stream(request)
        guard (200..<300).contains(response.status) else {
            throw errors.error(status: response.status, headers: response.headers, body: try await Self.head(of: response), endpoint: DisplayURL.endpoint(request.url))
        }
        if let type = response.headers["content-type"], !Self.isEventStream(type) {
            let endpoint = DisplayURL.endpoint(request.url)
            let text = errors.transport.text
            let head = try await Self.head(of: response, limit: 4096)
            throw APIError(
                .providerError,
                "the streaming request to \(endpoint) was answered with Content-Type: \(text.preview(type, limit: 80)), not an event stream (text/event-stream): \(text.preview(head, limit: 200)); if the server cannot stream, leave streaming out of --capabilities",
                provider: errors.transport.providerName, retryable: false, code: "not_event_stream")
        }
        return response
    }

    /// Whether a `Content-Type` names `text/event-stream` (parameters such as a charset allowed).
    static func isEventStream(_ contentType: String) -> Bool {
        let media = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        return media == "text/event-stream"
    }

    /// The first `limit` bytes of a streamed body (then the request is let go).
    static func head(of response: HTTPClient.StreamedResponse, limit: Int = maxErrorBody) async throws -> Data {
        var whole = Data()
        for try await piece in response.body {
            whole.append(piece.prefix(limit - whole.count))
            if whole.count >= limit { break }
        }
        return whole
    }
}

extension URL {
    /// The URL with `items` as its query (unchanged when there are none).
    func appendingQuery(_ items: [URLQueryItem]) -> URL {
        guard !items.isEmpty, var components = URLComponents(url: self, resolvingAgainstBaseURL: false) else { return self }
        components.queryItems = items
        return components.url ?? self
    }
}
