import CommandPipeline
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// HTTP statuses, bodies and transport errors mapped to the engine's error kinds.
/// See the table in `Design/providers.md`.
struct OpenAIErrorMapping {
    let configuration: OpenAIConfiguration
    let providerName: String

    /// The server's own message: OpenAI's `{"error":{"message"}}`, FastAPI's `{"detail": …}`, or the raw text.
    func serverMessage(_ body: Data) -> (message: String, code: String?) {
        if let value = try? JSONParser.parse([UInt8](body)), case .object(let object) = value {
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
        }
        let text = String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return (text.isEmpty ? "(empty body)" : text, nil)
    }

    func error(status: Int, headers: [String: String], body: Data, endpoint: String) -> APIError {
        var (message, code) = serverMessage(body)
        if let key = configuration.apiKey { message = key.redact(message) }
        let prefix = "HTTP \(status) from \(endpoint)"
        var error: APIError
        switch status {
        case 401, 403:
            error = APIError(
                .providerError, "\(prefix): \(message) — check the API key in $\(configuration.apiKeyVariable) (choose another variable with --api-key-env)",
                provider: providerName, retryable: false, code: code)
        case 429:
            let quota = code == "insufficient_quota"
            error = APIError(quota ? .providerError : .rateLimited, "\(prefix): \(message)", provider: providerName, retryable: !quota, code: code)
            error.retryAfter = Self.retryAfter(headers)
        case 408, 409, 500...599:
            error = APIError(.providerError, "\(prefix): \(message)", provider: providerName, retryable: true, code: code)
            error.retryAfter = Self.retryAfter(headers)
        default:
            error = APIError(.providerError, "\(prefix): \(message)", provider: providerName, retryable: false, code: code)
        }
        switch headers["x-should-retry"]?.lowercased() {
        case "true": error.retryable = true
        case "false": error.retryable = false
        default: break
        }
        return error
    }

    /// `retry-after-ms`, then `retry-after` as seconds or an HTTP date.
    static func retryAfter(_ headers: [String: String], now: Date = Date()) -> Duration? {
        if let ms = headers["retry-after-ms"].flatMap(Double.init), ms >= 0 { return .milliseconds(Int(ms)) }
        guard let value = headers["retry-after"]?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = Double(value), seconds >= 0 { return .milliseconds(Int(seconds * 1000)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let date = formatter.date(from: value) { return .milliseconds(max(0, Int(date.timeIntervalSince(now) * 1000))) }
        return nil
    }

    /// Transport failures: timeouts, refused or dropped connections.
    func error(transport: any Error, endpoint: String) -> APIError {
        if transport is CancellationError { return APIError(.cancelled, "request to \(endpoint) was cancelled", provider: providerName) }
        let base = configuration.baseURL.absoluteString
        guard let urlError = transport as? URLError else {
            return APIError(.providerError, "request to \(endpoint) failed: \(transport.localizedDescription)", provider: providerName, retryable: true, underlying: transport)
        }
        switch urlError.code {
        case .cancelled:
            return APIError(.cancelled, "request to \(endpoint) was cancelled", provider: providerName)
        case .timedOut:
            return APIError(.timeout, "no answer from \(endpoint) within \(Int(configuration.requestTimeout)) s (request timeout)", provider: providerName, retryable: true, underlying: urlError)
        case .cannotConnectToHost, .cannotFindHost, .dnsLookupFailed, .notConnectedToInternet:
            return APIError(.providerError, "cannot connect to \(base): is the server running and --base-url right? (\(urlError.code.rawValue))", provider: providerName, retryable: true, code: "connection_failed", underlying: urlError)
        case .networkConnectionLost:
            return APIError(.providerError, "the connection to \(base) was lost before the answer was complete", provider: providerName, retryable: true, code: "connection_lost", underlying: urlError)
        default:
            return APIError(.providerError, "request to \(endpoint) failed (URLError \(urlError.code.rawValue))", provider: providerName, retryable: true, underlying: urlError)
        }
    }
}
