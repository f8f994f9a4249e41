import CommandPipeline
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What every HTTP adapter says about failures that are not the provider's own error body:
/// transport errors (`HTTPClient.Failure`, `URLError`) and redirects, which `HTTPClient`
/// never follows. One place, so a new adapter gets `connection_lost`, the per-request
/// deadline, the body cap and the redirect rule without writing them again. Any text that
/// came from outside goes through `ServerText` (redacted, then cut).
struct TransportErrors: Sendable {
    let providerName: String
    /// The base URL as messages show it (never with userinfo).
    let displayBaseURL: String
    let requestTimeout: TimeInterval
    /// The configuration field or flag that raises each limit, for the hints.
    let deadlineSetting: String
    let bodyLimitSetting: String
    /// Where the address is set, named when it is wrong (`--base-url`, `--sink-webhook`).
    let urlSetting: String
    let text: ServerText

    init(
        providerName: String, displayBaseURL: String, requestTimeout: TimeInterval, deadlineSetting: String, bodyLimitSetting: String,
        urlSetting: String = "--base-url", text: ServerText
    ) {
        self.providerName = providerName
        self.urlSetting = urlSetting
        self.displayBaseURL = displayBaseURL
        self.requestTimeout = requestTimeout
        self.deadlineSetting = deadlineSetting
        self.bodyLimitSetting = bodyLimitSetting
        self.text = text
    }

    /// For an adapter that uses `HTTPClient`'s default deadline and body cap.
    init(providerName: String, baseURL: URL, key: APIKey?, requestTimeout: TimeInterval) {
        self.init(
            providerName: providerName, displayBaseURL: DisplayURL.string(baseURL), requestTimeout: requestTimeout,
            deadlineSetting: "the per-request deadline (HTTPClient.resourceTimeout)", bodyLimitSetting: "HTTPClient.maxResponseBytes",
            text: ServerText(key: key))
    }

    /// A 3xx: never followed (the key would travel with the request, or the body be lost
    /// on a 301/302/303 that turns POST into GET). The Location is named, redacted and
    /// without userinfo, so the user can fix `--base-url`.
    func redirect(status: Int, headers: [String: String], endpoint: String) -> APIError {
        let location = headers["location"].map { text.preview(DisplayURL.withoutUserinfo($0), limit: 200) } ?? "(no Location header)"
        return APIError(
            .providerError,
            "HTTP \(status) from \(DisplayURL.withoutUserinfo(endpoint)): the server redirects to \(location); redirects are not followed, so no key or data ever travels to another address: point \(urlSetting) at the final address",
            provider: providerName, retryable: false, code: "redirect")
    }

    func error(transport: any Error, endpoint: String) -> APIError {
        let endpoint = DisplayURL.withoutUserinfo(endpoint)
        if let api = transport as? APIError { return api }
        if transport is CancellationError { return APIError(.cancelled, "request to \(endpoint) was cancelled", provider: providerName) }
        let base = displayBaseURL
        if let failure = transport as? HTTPClient.Failure {
            switch failure {
            case .connectionLost(let received, let underlying):
                return APIError(
                    .providerError,
                    "the connection to \(base) was lost before the answer was complete (after \(received) bytes of the body: \(text.preview(underlying.localizedDescription, limit: 120)))",
                    provider: providerName, retryable: true, code: "connection_lost", underlying: failure)
            case .deadlineExceeded(let seconds):
                return APIError(
                    .timeout,
                    "the answer from \(endpoint) was not complete within \(Self.seconds(seconds)) (per-request deadline; the server kept the connection open without finishing); raise \(deadlineSetting) if answers really take this long",
                    provider: providerName, retryable: true, underlying: failure)
            case .bodyTooLarge(let limit, let declared):
                let what = declared.map { "declares a \($0)-byte body" } ?? "sent a body of more than \(limit) bytes"
                return APIError(
                    .providerError,
                    "the answer from \(endpoint) \(what), over the \(limit)-byte limit; check \(urlSetting) points at the API, or raise \(bodyLimitSetting)",
                    provider: providerName, retryable: false, code: "response_too_large", underlying: failure)
            case .encodedBody(let encoding):
                return APIError(
                    .providerError,
                    "the answer from \(endpoint) is compressed (Content-Encoding: \(text.preview(encoding, limit: 40))) although the request asked for none (Accept-Encoding: identity); compressed answers are refused, since their size once inflated cannot be bounded in advance: check \(urlSetting) points at the API, not at a proxy that compresses",
                    provider: providerName, retryable: false, code: "response_compressed", underlying: failure)
            case .tls(let tls):
                return Self.error(tls: tls, endpoint: endpoint, base: base, provider: providerName, text: text)
            case .invalidHeader:
                return APIError(
                    .invalidCommand, "request to \(endpoint) not sent: \(failure.description) (check the API key's variable for stray line breaks)",
                    provider: providerName, retryable: false, underlying: failure)
            }
        }
        guard let urlError = transport as? URLError else {
            return APIError(
                .providerError, "request to \(endpoint) failed: \(text.preview(transport.localizedDescription, limit: 200))", provider: providerName,
                retryable: true, underlying: transport)
        }
        switch urlError.code {
        case .cancelled:
            return APIError(.cancelled, "request to \(endpoint) was cancelled", provider: providerName)
        case .timedOut:
            return APIError(.timeout, "no answer from \(endpoint) within \(Self.seconds(requestTimeout)) (request timeout)", provider: providerName, retryable: true, underlying: urlError)
        case .cannotConnectToHost, .cannotFindHost, .dnsLookupFailed, .notConnectedToInternet:
            return APIError(.providerError, "cannot connect to \(base): is the server running and \(urlSetting) right? (\(urlError.code.rawValue))", provider: providerName, retryable: true, code: "connection_failed", underlying: urlError)
        case .resourceUnavailable:
            // Out of file descriptors (EMFILE/ENFILE): the HTTP/1.1 path says so with this code,
            // and URLSession (libcurl) reports its failed socket() the same way.
            let limit = DescriptorLimit.current
            return APIError(
                .providerError,
                "no connection to \(base) could be opened: the process is out of file descriptors (open-file limit \(limit), ulimit -n); the request was not sent; lower --concurrency or raise the limit",
                provider: providerName, retryable: true, code: "out_of_descriptors", underlying: urlError)
        case .networkConnectionLost:
            return APIError(.providerError, "the connection to \(base) was lost before the answer was complete", provider: providerName, retryable: true, code: "connection_lost", underlying: urlError)
        default:
            return APIError(
                .providerError, "request to \(endpoint) failed (URLError \(urlError.code.rawValue): \(text.preview(urlError.localizedDescription, limit: 200)))",
                provider: providerName, retryable: true, underlying: urlError)
        }
    }

    /// A TLS failure: `tls_failed`, naming the host and the reason; nothing was sent. A refused
    /// certificate or protocol is not retried (it will be refused again); a handshake cut or
    /// stalled may be. No hint ever suggests turning verification off: there is no such switch.
    static func error(tls: HTTPClient.TLSFailure, endpoint: String, base: String, provider: String, text: ServerText) -> APIError {
        let host = text.preview(tls.host, limit: 200)
        let reason = text.preview(tls.reason, limit: 200)
        let message: String
        switch tls.stage {
        case .verification:
            message = "TLS: the certificate of \(host) was refused (\(reason)); nothing was sent to \(base). Check that --base-url names the server as its certificate does; a server with a private CA is trusted with --ca-file FILE (its CA certificate, PEM)"
        case .handshake:
            message = "TLS: the handshake with \(host) failed (\(reason)); nothing was sent to \(base). The server must speak TLS 1.2 or later; check --base-url (https:// to a plain-http port fails this way)"
        case .timeout:
            message = "TLS: the handshake with \(host) did not finish (\(reason)); nothing was sent to \(base)"
        case .setup:
            message = "TLS could not be set up for \(base): \(reason); nothing was sent (check --ca-file)"
        }
        return APIError(
            tls.stage == .timeout ? .timeout : .providerError, message, provider: provider, retryable: tls.retryable, code: "tls_failed", underlying: HTTPClient.Failure.tls(tls))
    }

    /// "1.5 s", "600 s".
    static func seconds(_ value: TimeInterval) -> String {
        value == value.rounded() && abs(value) < 1e15 ? "\(Int(value)) s" : "\(value) s"
    }
}
