import CommandPipeline
import Foundation

/// The rules every HTTP provider applies to its base URL before anything is sent, so a
/// new adapter cannot forget one (see "Secrets" in `Design/providers.md` and `Design/security.md`):
/// no `user:password@` in the URL, and no key over plain http to a host off this machine
/// unless the operator opted in (`--allow-insecure-http`).
public enum EndpointRules {
    /// Whether `host` is this machine: `localhost`, an IPv4 address in 127.0.0.0/8, or `::1`.
    /// A name that merely starts with `127.` (`127.example.com`) is not.
    public static func isLoopbackHost(_ host: String) -> Bool {
        var host = host.lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ $0.count <= 3 && !$0.isEmpty && $0.allSatisfy(\.isASCII) }) else { return false }
        let values = octets.compactMap { UInt8($0) }
        return values.count == 4 && values[0] == 127
    }

    /// Why requests to `baseURL` must not be sent, if they must not.
    public static func problem(baseURL: URL, hasKey: Bool, keyVariable: String, allowInsecureHTTP: Bool, provider: String) -> APIError? {
        problem(
            url: baseURL, what: "the base URL", secret: hasKey ? "the API key in $\(keyVariable)" : nil,
            fix: "put the key in $\(keyVariable) and remove user:password@ from --base-url", allowInsecureHTTP: allowInsecureHTTP, provider: provider)
    }

    /// The rules for any address something private is sent to (a provider's base URL, a webhook):
    /// no `user:password@` (`what` names the address, `fix` says what to do instead), and
    /// `secret` (what would travel: a key, results) never over plain http off this machine
    /// unless `allowInsecureHTTP`.
    static func problem(url: URL, what: String, secret: String?, fix: String, allowInsecureHTTP: Bool, provider: String?) -> APIError? {
        // Checked before every request: the URL is shown only when there is something to say.
        var shown: String { DisplayURL.endpoint(url) }
        if url.user != nil || url.password != nil || DisplayURL.withoutUserinfo(url.absoluteString) != url.absoluteString {
            return APIError(
                .invalidCommand, "\(what) \(shown) carries user:password@; credentials in URLs end up in logs and error messages, so they are refused: \(fix)",
                provider: provider)
        }
        let loopback = url.host.map(isLoopbackHost) ?? false
        if url.scheme?.lowercased() == "http", let secret, !loopback, !allowInsecureHTTP {
            return APIError(
                .invalidCommand,
                "refusing to send \(secret) over plain http to \(shown): anyone on the path could read it; use https:// or, if the network path is trusted, pass --allow-insecure-http",
                provider: provider)
        }
        return nil
    }

    /// A base URL that ends in the API version the adapter appends itself (`/v1`, `/v1beta`):
    /// the provider's base URL is its origin (`example`), so requests would go to `…/v1/v1/…`.
    static func versionSuffixProblem(_ baseURL: URL, version: String, appends: String, example: String, provider: String) -> APIError? {
        guard baseURL.path.hasSuffix("/" + version) || baseURL.path.hasSuffix("/" + version + "/") else { return nil }
        return APIError(
            .invalidCommand,
            "the base URL \(DisplayURL.string(baseURL)) ends in /\(version), but for \(provider) it is the API's origin (e.g. \(example)): the adapter appends \(appends) itself; drop the /\(version)",
            provider: provider)
    }

    /// `--base-url` with its trailing `/` dropped, or `fallback` when none is given: an http(s)
    /// URL with a host (and, for an API `origin`, no query or fragment), else a usage error.
    static func baseURL(_ text: String?, fallback: URL, origin: Bool, example: String) throws(APIError) -> URL {
        guard let text else { return fallback }
        var trimmed = text
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), url.host != nil,
            !origin || (url.query == nil && url.fragment == nil)
        else {
            throw APIError(.invalidCommand, "--base-url '\(DisplayURL.withoutUserinfo(text))' is not an http(s) \(origin ? "origin" : "URL"); e.g. \(example)")
        }
        return url
    }

    /// What a provider built from options must meet before it is used: no endpoint `problem`,
    /// and a key for any server off this machine (read from one of `variables`).
    static func checkReady(baseURL: URL, hasKey: Bool, problem: APIError?, variables: [String]) throws(APIError) {
        if let problem { throw problem }
        if !hasKey && !(baseURL.host.map(isLoopbackHost) ?? false) {
            throw APIError(
                .invalidCommand,
                "no API key: set $\(variables.joined(separator: " or $")) (or name another variable with --api-key-env); keys are never taken as flags")
        }
    }

    /// Capabilities declared (`--capabilities`, `ProviderOptions.capabilities`) that the adapter cannot offer.
    static func checkCapabilities(_ declared: Set<ProviderCapability>?, supported: Set<ProviderCapability>, provider: String) throws(APIError) {
        guard let declared else { return }
        let unsupported = declared.subtracting(supported)
        guard unsupported.isEmpty else {
            throw APIError(
                .invalidCommand,
                "the \(provider) provider cannot offer \(unsupported.map(\.rawValue).sorted().joined(separator: ", ")); it supports \(ProviderCapability.allCases.filter(supported.contains).map(\.rawValue).joined(separator: ", "))")
        }
    }
}
