import CommandPipeline
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// HTTP statuses, bodies and transport errors mapped to the engine's error kinds.
/// See the table in `Design/providers.md`. Server text reaches a message only through
/// `text` (`ServerText`: the key redacted from the whole text, then cut).
struct OpenAIErrorMapping: ProviderErrorMapping {
    let configuration: OpenAIConfiguration
    let providerName: String

    var text: ServerText { ServerText(key: configuration.apiKey) }

    var transport: TransportErrors {
        TransportErrors(
            providerName: providerName, displayBaseURL: configuration.displayBaseURL, requestTimeout: configuration.requestTimeout,
            deadlineSetting: "OpenAIConfiguration.resourceTimeout", bodyLimitSetting: "OpenAIConfiguration.maxResponseBytes", text: text)
    }

    /// The server's own message (redacted, previewed): OpenAI's `{"error":{"message"}}`,
    /// FastAPI's `{"detail": …}`, or the raw text; and its error code (redacted, short).
    func serverMessage(_ body: Data) -> (message: String, code: String?) {
        let (message, code) = rawServerMessage(body)
        return (message.map { text.preview($0) } ?? text.preview(body), code.map { text.preview($0, limit: 100) })
    }

    private func rawServerMessage(_ body: Data) -> (message: String?, code: String?) {
        guard let value = try? JSONParser.parse([UInt8](body)), case .object(let object) = value else { return (nil, nil) }
        if case .object(let error)? = object["error"] {
            let code = error["code"]?.stringValue ?? error["type"]?.stringValue
            return (error["message"]?.stringValue ?? JSONSerializer.serialize(.object(error)), code)
        }
        if let message = object["error"]?.stringValue { return (message, nil) }
        if let detail = object["detail"] {
            if let text = detail.stringValue { return (text, nil) }
            if let items = detail.arrayValue {
                let messages = items.prefix(3).compactMap { item -> String? in
                    guard case .object(let o) = item else { return nil }
                    let location = o["loc"]?.arrayValue?.map { $0.stringValue ?? $0.intValue.map(String.init) ?? "?" }.joined(separator: ".")
                    return [location, o["msg"]?.stringValue].compactMap { $0 }.joined(separator: ": ")
                }
                return (messages.joined(separator: "; ") + (items.count > 3 ? "; … (\(items.count) problems)" : ""), nil)
            }
        }
        return (nil, nil)
    }

    func error(status: Int, headers: [String: String], body: Data, endpoint: String) -> APIError {
        let prefix = "HTTP \(status) from \(DisplayURL.withoutUserinfo(endpoint))"
        if (300..<400).contains(status) { return transport.redirect(status: status, headers: headers, endpoint: endpoint) }
        let (message, code) = serverMessage(body)
        var error: APIError
        switch status {
        case 401, 403:
            error = APIError(
                .providerError, "\(prefix): \(message) — check the API key in $\(configuration.apiKeyVariable) (choose another variable with --api-key-env)",
                provider: providerName, retryable: false, code: code)
        case 429:
            let quota = code == "insufficient_quota"
            error = APIError(quota ? .providerError : .rateLimited, "\(prefix): \(message)", provider: providerName, retryable: !quota, code: code)
        case 408, 409, 500...599:
            error = APIError(.providerError, "\(prefix): \(message)", provider: providerName, retryable: true, code: code)
        default:
            error = APIError(.providerError, "\(prefix): \(message)", provider: providerName, retryable: false, code: code)
        }
        // The server's retry hints (`Retry-After`, `x-should-retry`): read once, for every provider.
        return RetryHint.apply(to: error, status: status, headers: headers)
    }

}
