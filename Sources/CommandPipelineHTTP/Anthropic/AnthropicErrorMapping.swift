import CommandPipeline
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// HTTP statuses, error bodies and transport errors mapped to the engine's error kinds.
/// See the Anthropic table in `Design/providers.md`. Adapters never retry: they only say
/// whether retrying may help, and the engine's one retry layer decides.
struct AnthropicErrorMapping: ProviderErrorMapping {
    let configuration: AnthropicConfiguration
    let providerName: String

    /// Server text kept in a message, after the key is redacted.
    static let maxServerText = 300

    /// The server's own message and error type: `{"type":"error","error":{"type","message"}}`,
    /// or the raw text (a proxy's 413 page, say). The key is redacted before the text is cut.
    func serverMessage(_ body: Data) -> (message: String, type: String?) {
        var message: String
        var type: String?
        if let value = try? JSONParser.parse([UInt8](body)), case .object(let object) = value, case .object(let error)? = object["error"] {
            type = error["type"]?.stringValue
            message = error["message"]?.stringValue ?? JSONSerializer.serialize(.object(error))
            if let id = object["request_id"]?.stringValue { message += " (request \(id))" }
        } else if let value = try? JSONParser.parse([UInt8](body)), case .object(let object) = value, let text = object["error"]?.stringValue ?? object["detail"]?.stringValue {
            message = text
        } else {
            // Not JSON: the body's head, redacted, then cut.
            return (ServerText(key: configuration.apiKey).preview(body, limit: Self.maxServerText), nil)
        }
        message = ServerText(key: configuration.apiKey).preview(message, limit: Self.maxServerText)
        return (message.isEmpty ? "(empty body)" : message, type.map { ServerText(key: configuration.apiKey).preview($0, limit: 100) })
    }

    /// The one redaction (`ServerText`), for text kept whole.
    func redact(_ text: String) -> String { ServerText(key: configuration.apiKey).redact(text) }

    /// Server text in a message: redacted, then cut to `limit` characters.
    func preview(_ text: String, limit: Int) -> String { ServerText(key: configuration.apiKey).preview(text, limit: limit) }

    func error(status: Int, headers: [String: String], body: Data, endpoint: String) -> APIError {
        if (300..<400).contains(status) { return transport.redirect(status: status, headers: headers, endpoint: endpoint) }
        let (message, type) = serverMessage(body)
        let prefix = "HTTP \(status) from \(endpoint)"
        var error: APIError
        switch status {
        case 401, 403:
            error = APIError(
                .providerError,
                "\(prefix): \(message) — check the API key in $\(configuration.apiKeyVariable) (choose another variable with --api-key-env)",
                provider: providerName, retryable: false, code: type)
        case 404:
            error = APIError(
                .providerError, "\(prefix): \(message) — check the model name, the file id, or that --base-url is the API's origin (the adapter appends /v1/…)",
                provider: providerName, retryable: false, code: type)
        case 413:
            error = APIError(
                .providerError, "\(prefix): the request is too large (\(message)) — send large files through the Files API (uploads) or fewer parts per call",
                provider: providerName, retryable: false, code: type ?? "request_too_large")
        case 429:
            error = APIError(.rateLimited, "\(prefix): \(message)", provider: providerName, retryable: true, code: type)
        case 529:
            error = APIError(
                .providerError, "\(prefix): Anthropic is overloaded (\(message)); retrying later helps", provider: providerName, retryable: true,
                code: type ?? "overloaded_error")
        case 408, 409, 500...599:
            error = APIError(.providerError, "\(prefix): \(message)", provider: providerName, retryable: true, code: type)
        default:
            error = APIError(.providerError, "\(prefix): \(message)", provider: providerName, retryable: false, code: type)
        }
        return RetryHint.apply(to: error, status: status, headers: headers)
    }

    /// Transport failures and redirects, as every adapter reports them.
    var transport: TransportErrors {
        TransportErrors(providerName: providerName, baseURL: configuration.baseURL, key: configuration.apiKey, requestTimeout: configuration.requestTimeout)
    }
}
