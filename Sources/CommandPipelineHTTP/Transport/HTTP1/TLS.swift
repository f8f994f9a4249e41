import Foundation
#if canImport(COpenSSL)
import COpenSSL
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a TLS connection goes: the context (trust) and the name the certificate must carry.
struct TLSEndpoint: Sendable {
    let context: TLSContext
    /// The URL's host without brackets: a DNS name (sent as SNI, matched against the
    /// certificate's names) or an IP address (matched against its IP addresses, no SNI).
    let host: String
}

#if canImport(COpenSSL)

/// The client side of TLS through the system's OpenSSL (`libssl`), for the HTTP/1.1
/// transport's `https://` connections (ADR 0007). One per `HTTPClient`: TLS 1.2 at least,
/// the peer's chain verified against the system trust store (plus `caFile`, if given) and its
/// name against the URL's host, ALPN `http/1.1`. There is no way to turn verification off.
final class TLSContext: @unchecked Sendable {
    // An `SSL_CTX` is safe to share between threads once configured; only the loop's thread
    // makes sessions from it.
    private let context: OpaquePointer
    /// How this context trusts the system's CAs (`SystemTrust`): what `make` chose.
    private(set) var systemTrust: SystemTrust = .defaultPaths

    static let isAvailable = true

    private init(_ context: OpaquePointer) { self.context = context }

    deinit { SSL_CTX_free(context) }

    /// A context trusting the system's store (as `systemTrust` says) and `caFile` (a PEM file of
    /// one or more CA certificates), or why none can be made (an unreadable or empty CA file).
    static func make(caFile: String?, systemTrust: SystemTrust = .forThisProcess) -> Result<TLSContext, HTTPClient.TLSFailure> {
        ERR_clear_error()
        func failure(_ what: String) -> Result<TLSContext, HTTPClient.TLSFailure> {
            .failure(HTTPClient.TLSFailure(host: "", stage: .setup, reason: "\(what)\(Self.queuedError().map { ": \($0)" } ?? "")", retryable: false))
        }
        guard let context = SSL_CTX_new(TLS_client_method()) else { return failure("OpenSSL could not make a TLS context") }
        let made = TLSContext(context)
        guard commandpipeline_tls_configure(context) == 1 else { return failure("OpenSSL refused TLS 1.2 as the minimum version") }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if let caFile {
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                return failure("the CA file \(caFile) could not be read as PEM certificates")
            }
        }
        // The system's trust store: its hashed directory, read as chains need it, or OpenSSL's
        // default paths (SystemTrust; SSL_CERT_FILE / SSL_CERT_DIR when set, as every OpenSSL client reads them).
        made.systemTrust = systemTrust
        if case .directory(let directory) = systemTrust, made.hidesDirectoryCertificate(directory) { made.systemTrust = .defaultPaths }
        switch made.systemTrust {
        case .directory(let directory):
            guard SSL_CTX_load_verify_locations(context, nil, directory) == 1 else {
                return failure("the system's certificate directory \(directory) could not be used (set SSL_CERT_FILE to a CA bundle to trust that instead)")
            }
        case .defaultPaths:
            guard SSL_CTX_set_default_verify_paths(context) == 1 else { return failure("the system's trust store could not be read") }
        }
        let alpn: [UInt8] = [8] + Array("http/1.1".utf8)
        // Returns 0 on success (unlike most of OpenSSL).
        guard SSL_CTX_set_alpn_protos(context, alpn, UInt32(alpn.count)) == 0 else { return failure("OpenSSL refused the ALPN list") }
        ERR_clear_error()
        return .success(made)
    }

    /// Whether a certificate in memory (`--ca-file`'s) has the subject hash of one in the hashed
    /// `directory`: OpenSSL looks in memory first and would never read that one.
    private func hidesDirectoryCertificate(_ directory: String) -> Bool {
        subjectHashes.contains { FileManager.default.fileExists(atPath: directory + "/" + SystemTrust.hashFileName($0)) }
    }

    /// The subject hashes of the certificates this context holds in memory.
    var subjectHashes: [UInt] {
        let count = certificatesRead
        var hashes = [UInt](repeating: 0, count: count)
        let filled = Int(commandpipeline_store_subject_hashes(context, &hashes, Int32(clamping: count)))
        return Array(hashes.prefix(max(0, min(filled, count))))
    }

    /// How many certificates this context holds in memory (for tests: what has been read).
    var certificatesRead: Int { max(0, Int(commandpipeline_store_subject_hashes(context, nil, 0))) }

    /// Whether the certificate in the PEM file at `path` verifies against this context's trust,
    /// with the one in `chain` offered as its intermediate, without a handshake (for tests:
    /// which certificates a verification reads).
    func verifies(certificateAt path: String, chain: String? = nil) -> Bool {
        defer { ERR_clear_error() }
        func read(_ path: String) -> OpaquePointer? {
            guard let file = fopen(path, "r") else { return nil }
            defer { fclose(file) }
            return PEM_read_X509(file, nil, nil, nil)
        }
        guard let certificate = read(path) else { return false }
        defer { X509_free(certificate) }
        let intermediate = chain.flatMap(read)
        defer { if let intermediate { X509_free(intermediate) } }
        if chain != nil && intermediate == nil { return false }
        return commandpipeline_verify(context, certificate, intermediate) == 1
    }

    /// Why `caFile` cannot be trusted, or nil when it can. Reads the file alone, into a scratch
    /// context: the system's store is for the context the first `https://` request makes
    /// (`SystemTrust`: parsing the whole bundle costs ~20 ms with OpenSSL 3).
    static func problem(caFile: String) -> String? {
        ERR_clear_error()
        defer { ERR_clear_error() }
        guard let context = SSL_CTX_new(TLS_client_method()) else { return "OpenSSL could not make a TLS context" }
        defer { SSL_CTX_free(context) }
        guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
            return "the CA file \(caFile) could not be read as PEM certificates\(queuedError().map { ": \($0)" } ?? "")"
        }
        return nil
    }

    /// A session over the connected socket `fd` for `host`; nil only when OpenSSL is out of memory.
    func session(fd: Int32, host: String) -> TLSSession? {
        guard let ssl = SSL_new(context) else { return nil }
        let session = TLSSession(ssl, host: host, fd: fd)
        guard SSL_set_fd(ssl, fd) == 1 else { return nil }
        var v4 = in_addr()
        var v6 = in6_addr()
        let isAddress = inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
        if isAddress {
            // An IP address: matched against the certificate's IP addresses; never sent as SNI (RFC 6066).
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 else { return nil }
        } else {
            SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            guard SSL_set1_host(ssl, host) == 1, commandpipeline_tls_set_server_name(ssl, host) == 1 else { return nil }
        }
        return session
    }

    /// The oldest queued OpenSSL error's reason ("unsupported protocol"), clearing the queue.
    static func queuedError() -> String? {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return nil }
        if let reason = ERR_reason_error_string(code) { return String(cString: reason) }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A session a server offered for resumption (a TLS 1.3 ticket, a TLS 1.2 session), kept by
/// the event loop per origin (ADR 0007, "Session resumption"). This copy is never attached to a
/// connection: each connection resumes from its own duplicate, so OpenSSL's invalidation of a
/// connection's session when the connection ends without close_notify never reaches it.
final class TLSResumption {
    fileprivate let session: OpaquePointer

    fileprivate init(_ session: OpaquePointer) { self.session = session }

    deinit { SSL_SESSION_free(session) }
}

/// One connection's TLS state over its non-blocking socket (the event loop's thread only).
/// Reads and writes answer like `Sockets.receive` and `Sockets.send`, so the loop treats both
/// kinds of connection alike; `wantsWrite` says the session waits for the socket to take bytes
/// (the loop then polls for it).
final class TLSSession {
    private let ssl: OpaquePointer
    let host: String
    let fd: Int32
    /// OpenSSL needs the socket writable before it can go on.
    private(set) var wantsWrite = false
    /// A read or write failed with a TLS error (a fatal alert, a bad record), not a mere close:
    /// the origin's saved session is then not offered again (RFC 5246 section 7.2.2).
    private(set) var failedWithTLSError = false
    /// The session last looked at by `newResumableSession`, held (a reference counted) so that
    /// its address cannot be reused by a later session: OpenSSL replaces the connection's
    /// session with a new object per ticket and frees the old one.
    private var lastSession: OpaquePointer? {
        didSet {
            if let lastSession { SSL_SESSION_up_ref(lastSession) }
            if let oldValue { SSL_SESSION_free(oldValue) }
        }
    }

    enum Step {
        case done
        case waiting
        case failed(HTTPClient.TLSFailure)
    }

    fileprivate init(_ ssl: OpaquePointer, host: String, fd: Int32) {
        self.ssl = ssl
        self.host = host
        self.fd = fd
    }

    deinit {
        if let lastSession { SSL_SESSION_free(lastSession) }
        SSL_free(ssl)
    }

    /// Takes the handshake as far as the socket allows. Nothing of the request is written
    /// before it is `done`; a refused certificate or protocol is a non-retryable failure.
    func handshake() -> Step {
        ERR_clear_error()
        let result = SSL_connect(ssl)
        let systemError = Sockets.errno
        if result == 1 {
            wantsWrite = false
            var protocolName: UnsafePointer<UInt8>?
            var length: UInt32 = 0
            SSL_get0_alpn_selected(ssl, &protocolName, &length)
            if let protocolName, length > 0 {
                let chosen = String(decoding: UnsafeBufferPointer(start: protocolName, count: Int(length)), as: UTF8.self)
                guard chosen == "http/1.1" else {
                    return .failed(failure(.handshake, "the server chose the protocol \(chosen.prefix(40)) by ALPN, though only http/1.1 was offered", retryable: false))
                }
            }
            return .done
        }
        let error = SSL_get_error(ssl, result)
        switch error {
        case SSL_ERROR_WANT_READ:
            wantsWrite = false
            return .waiting
        case SSL_ERROR_WANT_WRITE:
            wantsWrite = true
            return .waiting
        default:
            let verified = SSL_get_verify_result(ssl)
            if verified != X509_V_OK {
                ERR_clear_error()
                let reason = X509_verify_cert_error_string(verified).map { String(cString: $0) } ?? "verification error \(verified)"
                return .failed(failure(.verification, reason, retryable: false))
            }
            if let reason = TLSContext.queuedError(), !reason.lowercased().contains("unexpected eof") {
                return .failed(failure(.handshake, reason, retryable: false))
            }
            // No TLS error: the connection closed or broke under the handshake (a restart, a
            // reset); nothing was sent, so trying again may help.
            let what = result == 0 || systemError == 0 ? "the server closed the connection during the handshake" : "the connection broke during the handshake (\(String(cString: strerror(systemError))))"
            return .failed(failure(.handshake, what, retryable: true))
        }
    }

    /// Offers `saved` to the server (before the handshake starts): the handshake resumes it —
    /// no certificate sent, parsed or verified again — or, if the server declines, is a full one.
    func offer(_ saved: TLSResumption) {
        guard let copy = SSL_SESSION_dup(saved.session) else { return }
        if SSL_set_session(ssl, copy) == 1 { lastSession = copy }
        SSL_SESSION_free(copy)  // the SSL holds its own reference
    }

    /// Whether the handshake resumed an earlier session.
    var resumed: Bool { SSL_session_reused(ssl) == 1 }

    /// A copy of a session the server newly offered on this connection for resumption (after a
    /// TLS 1.2 handshake, or when a TLS 1.3 ticket has been read), once per offer; nil otherwise.
    func newResumableSession() -> TLSResumption? {
        guard let current = SSL_get_session(ssl), current != lastSession else { return nil }
        lastSession = current
        // TLS 1.3 resumes only with a ticket: the session after the handshake also carries the
        // echoed legacy session id (middlebox compatibility), which OpenSSL counts as resumable.
        let isTLS13 = SSL_SESSION_get_protocol_version(current) == TLS1_3_VERSION
        guard SSL_SESSION_is_resumable(current) == 1, !isTLS13 || SSL_SESSION_has_ticket(current) == 1,
            let copy = SSL_SESSION_dup(current)
        else { return nil }
        return TLSResumption(copy)
    }

    /// Whether the queued OpenSSL error is a TLS error proper, not the peer's close without
    /// close_notify ("unexpected eof while reading", a truncation, not an alert).
    private static func queuedIsTLSError() -> Bool {
        let code = ERR_peek_error()
        return code != 0 && ERR_GET_REASON(code) != SSL_R_UNEXPECTED_EOF_WHILE_READING
    }

    private func failure(_ stage: HTTPClient.TLSFailure.Stage, _ reason: String, retryable: Bool) -> HTTPClient.TLSFailure {
        HTTPClient.TLSFailure(host: host, stage: stage, reason: reason, retryable: retryable)
    }

    /// Bytes written, 0 when the socket would block, or a negative number when the connection broke.
    func write(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard !bytes.isEmpty else { return 0 }
        ERR_clear_error()
        let n = SSL_write(ssl, bytes.baseAddress, Int32(clamping: bytes.count))
        if n > 0 {
            wantsWrite = false
            return Int(n)
        }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_WRITE:
            wantsWrite = true
            return 0
        case SSL_ERROR_WANT_READ:
            wantsWrite = false
            return 0
        case let error:
            if error == SSL_ERROR_SSL && Self.queuedIsTLSError() { failedWithTLSError = true }
            ERR_clear_error()
            return -Int(EPIPE)
        }
    }

    /// Bytes read (0 at the end of the stream), `nil` when the socket would block, or a negative
    /// number when the connection broke. Only a close_notify is an end of stream: a TCP close
    /// without it is `-ECONNRESET` (RFC 9112 §9.8), so a body delimited by the close is refused
    /// as truncated when it ends that way, while a body framed by its length or chunks is whole
    /// before the close and a request on a kept-alive connection the server dropped unsent is
    /// sent again as after any close.
    func read(into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        ERR_clear_error()
        let n = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        if n > 0 {
            wantsWrite = false
            return Int(n)
        }
        let error = SSL_get_error(ssl, n)
        switch error {
        case SSL_ERROR_WANT_READ:
            wantsWrite = false
            return nil
        case SSL_ERROR_WANT_WRITE:
            wantsWrite = true
            return nil
        case SSL_ERROR_ZERO_RETURN:
            // The peer's close_notify: the only end of stream TLS vouches for.
            return 0
        default:
            // Includes the close without close_notify (OpenSSL 3: SSL_ERROR_SSL "unexpected
            // eof while reading"; 1.1: SSL_ERROR_SYSCALL with nothing read).
            if error == SSL_ERROR_SSL && Self.queuedIsTLSError() { failedWithTLSError = true }
            ERR_clear_error()
            return -Int(ECONNRESET)
        }
    }

    /// Bytes OpenSSL holds that `poll` cannot see (decrypted, or read ahead from the socket).
    var hasPending: Bool { SSL_has_pending(ssl) == 1 }

    /// Whether an idle connection can carry another request: open, with no application data
    /// nobody asked for. Records the server sends on its own after the handshake (TLS 1.3
    /// session tickets) are read and dropped here; a close_notify or any data is not reusable.
    func isOpenAndQuiet(scratch: UnsafeMutableBufferPointer<UInt8>) -> Bool {
        for _ in 0..<8 {
            if !hasPending && Sockets.isOpenAndQuiet(fd) { return true }
            guard read(into: scratch) == nil, !wantsWrite else { return false }
        }
        return false
    }
}

#else

/// No OpenSSL on this platform (Darwin): `https://` stays on URLSession (ADR 0007), and this
/// stand-in is never asked for a session.
final class TLSContext: Sendable {
    static let isAvailable = false

    static func make(caFile: String?) -> Result<TLSContext, HTTPClient.TLSFailure> {
        .failure(HTTPClient.TLSFailure(host: "", stage: .setup, reason: "TLS through OpenSSL is not available on this platform", retryable: false))
    }

    static func problem(caFile: String) -> String? {
        "--ca-file needs the own transport's TLS (OpenSSL, on Linux); on this platform https goes through URLSession and the system's trust settings"
    }

    func session(fd: Int32, host: String) -> TLSSession? { nil }
}

/// Never made where there is no OpenSSL.
final class TLSResumption {}

/// Never made where there is no OpenSSL.
final class TLSSession {
    enum Step {
        case done
        case waiting
        case failed(HTTPClient.TLSFailure)
    }
    let host = ""
    var wantsWrite: Bool { false }
    var failedWithTLSError: Bool { false }
    var resumed: Bool { false }
    func offer(_ saved: TLSResumption) {}
    func newResumableSession() -> TLSResumption? { nil }
    var hasPending: Bool { false }
    func handshake() -> Step { .failed(HTTPClient.TLSFailure(host: host, stage: .setup, reason: "no TLS on this platform", retryable: false)) }
    func write(_ bytes: UnsafeRawBufferPointer) -> Int { -Int(EPIPE) }
    func read(into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int? { -Int(ECONNRESET) }
    func isOpenAndQuiet(scratch: UnsafeMutableBufferPointer<UInt8>) -> Bool { false }
}

#endif
