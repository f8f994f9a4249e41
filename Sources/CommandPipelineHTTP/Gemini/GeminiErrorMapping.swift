import CommandPipeline
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `google.rpc.Status` bodies, HTTP statuses and transport errors mapped to the engine's
/// error kinds. See the Gemini error table in `Design/providers.md`.
struct GeminiErrorMapping: ProviderErrorMapping {
    let configuration: GeminiConfiguration
    let providerName: String

    /// What a `google.rpc.Status` says.
    struct Status {
        var code: Int?
        var message: String
        /// `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, …
        var status: String?
        /// `ErrorInfo.reason`, e.g. `API_KEY_INVALID`.
        var reason: String?
        var retryDelay: Duration?
        /// `QuotaFailure` violations' `quotaId`s.
        var quotaIds: [String] = []
    }

    /// Reads `{"error": {code, message, status, details}}` (also inside a one-element array);
    /// anything else gives the body's first bytes as the message.
    static func status(_ body: Data) -> Status {
        if let value = try? JSONParser.parse([UInt8](body)) {
            var object = value.objectValue
            if object == nil, let first = value.arrayValue?.first { object = first.objectValue }
            if let error = object?["error"]?.objectValue { return status(error) }
            if let message = object?["error"]?.stringValue { return Status(message: message) }
        }
        let text = String(decoding: body.prefix(65_536), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return Status(message: text.isEmpty ? "(empty body)" : text)
    }

    static func status(_ error: JSONObject) -> Status {
        var result = Status(
            code: GeminiResponses.integer(error["code"]), message: error["message"]?.stringValue ?? JSONSerializer.serialize(.object(error)),
            status: error["status"]?.stringValue)
        for detail in error["details"]?.arrayValue ?? [] {
            guard let detail = detail.objectValue else { continue }
            let type = detail["@type"]?.stringValue ?? ""
            if let reason = detail["reason"]?.stringValue, result.reason == nil, type.hasSuffix("ErrorInfo") || type.isEmpty {
                result.reason = reason
            }
            if type.hasSuffix("RetryInfo"), let delay = retryDelay(detail["retryDelay"]) { result.retryDelay = delay }
            if type.hasSuffix("QuotaFailure") {
                for violation in detail["violations"]?.arrayValue ?? [] {
                    if let id = violation.objectValue?["quotaId"]?.stringValue { result.quotaIds.append(id) }
                }
            }
        }
        return result
    }

    /// A protobuf `Duration` in JSON: `"38s"`, `"1.5s"`, or `{"seconds": "38", "nanos": 0}`.
    /// Negative, malformed or absurd values give nil; long ones are capped.
    static func retryDelay(_ value: JSONValue?) -> Duration? {
        var seconds: Double?
        switch value {
        case .string(let text)?:
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasSuffix("s"), trimmed.count <= 32 else { return nil }
            seconds = Double(trimmed.dropLast())
        case .object(let object)?:
            let whole = GeminiResponses.integer(object["seconds"]).map(Double.init) ?? 0
            let nanos = GeminiResponses.integer(object["nanos"]).map(Double.init) ?? 0
            seconds = whole + nanos / 1e9
        case .int, .double:
            seconds = value?.doubleValue
        default:
            return nil
        }
        return seconds.flatMap(RetryHint.capped(seconds:))
    }

    func error(status httpStatus: Int, headers: [String: String], body: Data, endpoint: String) -> APIError {
        if (300..<400).contains(httpStatus) { return transport.redirect(status: httpStatus, headers: headers, endpoint: endpoint) }
        let parsed = Self.status(body)
        // Redacted first, then shortened: a cut must never leave part of the key behind.
        let message = ServerText(key: configuration.apiKey).preview(parsed.message, limit: 600)
        let statusWord = parsed.status.map { " \($0)" } ?? ""
        let prefix = "HTTP \(httpStatus)\(statusWord) from \(endpoint)"
        let code = parsed.reason ?? parsed.status
        let keyHint = "check the API key in $\(configuration.apiKeyVariable) (name another variable with --api-key-env; GEMINI_API_KEY, then GOOGLE_API_KEY, are read by default)"
        var error: APIError
        switch httpStatus {
        case 400 where parsed.reason == "API_KEY_INVALID" || message.localizedCaseInsensitiveContains("API key not valid"):
            error = APIError(.providerError, "\(prefix): \(message) — \(keyHint)", provider: providerName, retryable: false, code: "API_KEY_INVALID")
        case 401:
            error = APIError(.providerError, "\(prefix): \(message) — \(keyHint)", provider: providerName, retryable: false, code: code)
        case 403:
            error = APIError(
                .providerError,
                "\(prefix): \(message) — check the API key in $\(configuration.apiKeyVariable) and that the file or cache named in the request still exists (files live 48 h, caches until their TTL)",
                provider: providerName, retryable: false, code: code)
        case 429:
            let daily = parsed.quotaIds.contains { $0.localizedCaseInsensitiveContains("PerDay") }
            if daily {
                error = APIError(
                    .providerError, "\(prefix): \(message) — a daily quota is exhausted; retrying today cannot help", provider: providerName,
                    retryable: false, code: "quota_exhausted_per_day")
            } else {
                error = APIError(.rateLimited, "\(prefix): \(message)", provider: providerName, retryable: true, code: code)
                error.retryAfter = parsed.retryDelay
            }
        case 408, 409, 500, 502, 503, 504:
            error = APIError(.providerError, "\(prefix): \(message)", provider: providerName, retryable: true, code: code)
            error.retryAfter = parsed.retryDelay
        case _ where parsed.status == "UNAVAILABLE" || parsed.status == "RESOURCE_EXHAUSTED":
            // The status says "try again later" whatever HTTP code a server or proxy put on it.
            error = APIError(
                parsed.status == "RESOURCE_EXHAUSTED" ? .rateLimited : .providerError, "\(prefix): \(message)", provider: providerName, retryable: true,
                code: code)
            error.retryAfter = parsed.retryDelay
        default:
            error = APIError(.providerError, "\(prefix): \(message)", provider: providerName, retryable: false, code: code)
        }
        return RetryHint.apply(to: error, status: httpStatus, headers: headers)
    }

    /// Transport failures and redirects, as every adapter reports them.
    var transport: TransportErrors {
        TransportErrors(providerName: providerName, baseURL: configuration.baseURL, key: configuration.apiKey, requestTimeout: configuration.requestTimeout)
    }
}
