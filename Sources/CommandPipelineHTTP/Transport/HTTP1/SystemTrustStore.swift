import Foundation
#if canImport(COpenSSL)
import COpenSSL
#endif

/// Where the system keeps the CAs it trusts, read only as far as a chain needs (ADR 0007, "The
/// system's trust store").
///
/// OpenSSL's `SSL_CTX_set_default_verify_paths` parses the whole bundle file (Debian:
/// `/etc/ssl/certs/ca-certificates.crt`, ~150 certificates) when the context is made: 10–20 ms
/// of CPU before the first https request of every run, which a burst of commands waits for.
/// The same trust, read lazily: the certificate directory first (certificates under their
/// subject hash, `5ad8a5d6.0`, which OpenSSL reads one file at a time when a chain needs that
/// issuer), then the bundle, parsed the first time a chain needs an issuer that neither the
/// certificates already loaded (`--ca-file`'s among them) nor the directory have. `SSL_CERT_FILE`
/// and `SSL_CERT_DIR` (a `:`-separated list) are honoured as every OpenSSL client honours them.
struct SystemTrustStore: Sendable, Equatable {
    /// The bundle file: `SSL_CERT_FILE`, else OpenSSL's default.
    var file: String
    /// The certificate directories: `SSL_CERT_DIR` split at `:`, else OpenSSL's default one.
    var directories: [String]
}

#if canImport(COpenSSL)
extension SystemTrustStore {
    /// The store OpenSSL's defaults name, with `SSL_CERT_FILE` and `SSL_CERT_DIR` from `environment`.
    static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> SystemTrustStore {
        let file = environment["SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? String(cString: X509_get_default_cert_file())
        let directories = (environment["SSL_CERT_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? String(cString: X509_get_default_cert_dir()))
            .split(separator: ":", omittingEmptySubsequences: true).map(String.init)
        return SystemTrustStore(file: file, directories: directories)
    }

    /// Adds this store to `context`'s trust, the directories before the bundle. Like OpenSSL's
    /// default paths, a store that cannot be read is not an error here: a chain it cannot
    /// verify fails its handshake, naming why. False only when OpenSSL is out of memory.
    func trust(in context: OpaquePointer) -> Bool {
        for directory in directories { _ = SSL_CTX_load_verify_locations(context, nil, directory) }
        ERR_clear_error()
        guard let method = Self.lazyBundle.method else { return false }
        return commandpipeline_lazy_bundle_add(context, method, file) == 1
    }

    /// The lazy bundle's lookup method, made once: every context's lookup points at it.
    private static let lazyBundle = LookupMethod(commandpipeline_lazy_bundle_method())

    private final class LookupMethod: @unchecked Sendable {
        // Never changed after it is made; OpenSSL only reads it.
        let method: OpaquePointer?
        init(_ method: OpaquePointer?) { self.method = method }
    }
}
#endif
