import CommandPipeline
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// HTTP statuses, bodies and transport errors mapped to the engine's error kinds.
/// See the table in `Design/providers.md`. Server text reaches a message only through
/// `text` (`ServerText`: the key redacted from the whole text, then cut).
struct OpenAIErrorMapping {
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

    /// The longest retry hint kept. The engine caps hints further (60 s by default); this cap
    /// only makes sure no header value can overflow a `Duration` or an `Int`.
    static let maxRetryAfter: Duration = .seconds(3600)

    /// `retry-after-ms`, then `retry-after` as seconds or an HTTP date. Values are read
    /// defensively: only plain decimal numbers count (no `inf`, `nan`, `1e20`, hex, signs), a
    /// date in the past is zero, and everything is capped at `maxRetryAfter`.
    static func retryAfter(_ headers: [String: String], now: Date = Date()) -> Duration? {
        if let ms = headers["retry-after-ms"].flatMap(decimal) { return capped(milliseconds: ms) }
        guard let value = headers["retry-after"]?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = decimal(value) { return capped(milliseconds: seconds * 1000) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let date = formatter.date(from: value) { return capped(milliseconds: date.timeIntervalSince(now) * 1000) }
        return nil
    }

    /// `text` as a number if it is digits with an optional fraction (`2`, `1.5`), else nil.
    private static func decimal(_ text: String) -> Double? {
        let text = text.trimmingCharacters(in: .whitespaces)
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard !text.isEmpty, parts.count <= 2, !parts[0].isEmpty,
            parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }), parts.count == 1 || !parts[1].isEmpty
        else { return nil }
        return Double(text)
    }

    /// A non-negative, finite number of milliseconds as a `Duration`, at most `maxRetryAfter`.
    private static func capped(milliseconds: Double) -> Duration? {
        guard !milliseconds.isNaN else { return nil }
        let cap = Double(maxRetryAfter.components.seconds) * 1000
        return .milliseconds(Int(min(max(milliseconds, 0), cap)))
    }

    /// Transport failures: timeouts, refused or dropped connections, the deadline and body cap.
    func error(transport failure: any Error, endpoint: String) -> APIError {
        transport.error(transport: failure, endpoint: endpoint)
    }
}
