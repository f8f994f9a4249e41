import Dispatch
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `HTTPClient`'s path for `http://` and (where OpenSSL is, `TLSContext.isAvailable`)
/// `https://`: HTTP/1.1 with keep-alive over non-blocking sockets, TLS through OpenSSL on the
/// same sockets, one I/O thread (`HTTP1EventLoop`) started on first use. Same rules as the
/// `URLSession` path: redirects are returned, never followed; idle timeout and overall
/// deadline (handshakes included); body cap; cancelling the awaiting task (or the body's
/// consumer) closes the connection. See `Design/decisions/0007-http-transport.md`.
final class HTTP1Transport: Sendable {
    let maxConnectionsPerOrigin: Int
    let maxResponseBytes: Int
    let resourceTimeout: TimeInterval
    /// A PEM file of CAs trusted besides the system's store.
    let caFile: String?
    private let loop = Mutex<HTTP1EventLoop?>(nil)
    /// The TLS context, made for the first `https://` request (or why it cannot be).
    private let tls = Mutex<Result<TLSContext, HTTPClient.TLSFailure>?>(nil)
    private let addresses = Mutex<[String: (addresses: [SocketAddress], expires: UInt64)]>([:])
    /// Names are looked up again after this long (a load balancer's DNS may move).
    static let addressLifetime: UInt64 = 30_000_000_000

    init(maxConnectionsPerOrigin: Int, maxResponseBytes: Int, resourceTimeout: TimeInterval, caFile: String? = nil) {
        self.maxConnectionsPerOrigin = max(1, maxConnectionsPerOrigin)
        self.maxResponseBytes = maxResponseBytes
        self.resourceTimeout = resourceTimeout
        self.caFile = caFile
    }

    deinit {
        loop.withLock { $0?.shutdown() }
    }

    /// Whether this path takes `request`: http (or https, where there is OpenSSL) with a host,
    /// a body in memory (or none).
    static func handles(_ request: URLRequest) -> Bool {
        guard let url = request.url, let scheme = url.scheme?.lowercased(), scheme == "http" || (scheme == "https" && TLSContext.isAvailable),
            let host = url.host, !host.isEmpty
        else { return false }
        return request.httpBodyStream == nil
    }

    /// The port a scheme means when the URL names none.
    static func defaultPort(_ scheme: String) -> Int { scheme == "https" ? 443 : 80 }

    func send(_ request: URLRequest) async throws -> HTTPClient.Response {
        try await collect(try await prepare(request))
    }

    /// `request` with its body read from `file` as it goes out (`Content-Length`: the file's
    /// size when opened). Same deadlines, cap and cancellation as `send`.
    func upload(_ request: URLRequest, fromFile file: URL) async throws -> HTTPClient.Response {
        var request = request
        request.httpBody = nil
        return try await upload(request, body: try HTTP1FileBody(file))
    }

    /// `request` with `body` (head, file, tail) as it goes out; `Content-Length`: `body.size`.
    func upload(_ request: URLRequest, body: HTTP1FileBody) async throws -> HTTPClient.Response {
        var request = request
        request.httpBody = nil
        return try await collect(try await prepare(request, fileBody: body))
    }

    /// Hands `exchange` to the loop and awaits the whole response; cancelling the awaiting task
    /// ends the exchange and closes its connection (also when the cancel overtakes the submit).
    private func collect(_ exchange: HTTP1Exchange) async throws -> HTTPClient.Response {
        guard let loop = eventLoop() else { throw URLError(.resourceUnavailable) }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPClient.Response, any Error>) in
                exchange.sink = .collect(continuation)
                loop.submit(exchange)
            }
        } onCancel: {
            loop.cancel(exchange)
        }
    }

    func stream(_ request: URLRequest) async throws -> HTTPClient.StreamedResponse {
        let exchange = try await prepare(request)
        guard let loop = eventLoop() else { throw URLError(.resourceUnavailable) }
        let (body, bodyContinuation) = AsyncThrowingStream<Data, any Error>.makeStream()
        bodyContinuation.onTermination = { @Sendable termination in
            if case .cancelled = termination { loop.cancel(exchange) }
        }
        let (status, headers) = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (head: CheckedContinuation<(Int, [String: String]), any Error>) in
                exchange.sink = .stream(head: head, body: bodyContinuation)
                loop.submit(exchange)
            }
        } onCancel: {
            loop.cancel(exchange)
        }
        return HTTPClient.StreamedResponse(status: status, headers: headers, body: body)
    }

    /// The I/O thread, started on first use; nil when even its wake pipe cannot be made
    /// (out of file descriptors), which fails the request instead of the process.
    private func eventLoop() -> HTTP1EventLoop? {
        loop.withLock { loop in
            if let loop { return loop }
            loop = HTTP1EventLoop(maxConnectionsPerOrigin: maxConnectionsPerOrigin)
            return loop
        }
    }

    private func prepare(_ request: URLRequest, fileBody: HTTP1FileBody? = nil) async throws -> HTTP1Exchange {
        try Task.checkCancellation()
        guard let url = request.url, let host = url.host, let scheme = url.scheme?.lowercased() else { throw URLError(.badURL) }
        let defaultPort = Self.defaultPort(scheme)
        let port = url.port ?? defaultPort
        guard (1...65_535).contains(port) else { throw URLError(.badURL) }
        // The scheme is part of the pool's key: an http and an https connection to one host:port never mix.
        let origin = "\(scheme)://\(host.lowercased()):\(port)"
        let bytes = try Self.serialize(request, url: url, host: host, port: port, defaultPort: defaultPort, bodyLength: fileBody?.size)
        let endpoint = scheme == "https" ? TLSEndpoint(context: try tlsContext(), host: Self.bare(host)) : nil
        let resolved = try await resolve(host: host, port: port, key: "\(host.lowercased()):\(port)")
        let idle = request.timeoutInterval > 0 ? request.timeoutInterval : 60
        return HTTP1Exchange(
            origin: origin, addresses: resolved, request: bytes, isHead: bytes.starts(with: Array("HEAD ".utf8)), idleTimeout: idle,
            resourceTimeout: resourceTimeout, maxBodyBytes: maxResponseBytes, tls: endpoint, fileBody: fileBody)
    }

    /// The client's TLS context, made once; a CA file that cannot be read fails every https request.
    private func tlsContext() throws(HTTPClient.Failure) -> TLSContext {
        let made = tls.withLock { made in
            if let made { return made }
            let context = TLSContext.make(caFile: caFile)
            made = context
            return context
        }
        switch made {
        case .success(let context): return context
        case .failure(let failure): throw .tls(failure)
        }
    }

    /// A host without the brackets of an IPv6 literal.
    static func bare(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// Sets the addresses a host:port resolves to (for tests: a name with several addresses).
    func remember(_ found: [SocketAddress], host: String, port: Int) {
        addresses.withLock { $0["\(host.lowercased()):\(port)"] = (found, HTTP1EventLoop.now() &+ Self.addressLifetime) }
    }

    /// The addresses of `host`:`port` (`key`), looked up again after `addressLifetime`.
    private func resolve(host: String, port: Int, key: String) async throws -> [SocketAddress] {
        let now = HTTP1EventLoop.now()
        if let cached = addresses.withLock({ $0[key] }), cached.expires > now { return cached.addresses }
        // An IP literal needs no lookup; a name is looked up off the cooperative pool (getaddrinfo blocks).
        let found = await withCheckedContinuation { (continuation: CheckedContinuation<[SocketAddress], Never>) in
            DispatchQueue.global().async { continuation.resume(returning: Sockets.resolve(host: host, port: port)) }
        }
        guard !found.isEmpty else { throw URLError(.cannotFindHost) }
        addresses.withLock { $0[key] = (found, now &+ Self.addressLifetime) }
        return found
    }

    /// "/path?query" of an absolute URL string (already percent-encoded, as `URL` keeps it):
    /// what follows the authority, without the fragment; "/" when empty.
    static func requestTarget(_ absolute: String) -> String {
        let bytes = Array(absolute.utf8)
        // "://" found by hand: the generic `firstRange(of:)` was ~1.5% of a request's CPU.
        let colon = UInt8(ascii: ":"), slash = UInt8(ascii: "/")
        guard let at = bytes.indices.dropLast(2).first(where: { bytes[$0] == colon && bytes[$0 + 1] == slash && bytes[$0 + 2] == slash }) else { return "/" }
        let schemeEnd = at + 3
        let start = bytes[schemeEnd...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? bytes.endIndex
        let end = bytes[start...].firstIndex(of: UInt8(ascii: "#")) ?? bytes.endIndex
        let target = String(decoding: bytes[start..<end], as: UTF8.self)
        return target.hasPrefix("/") ? target : "/" + target
    }

    /// The request as bytes on the wire. Header names must be tokens and values free of CR,
    /// LF and NUL: a key with a line break in its variable would otherwise inject headers.
    /// `bodyLength`: the length of a body that follows from a file (an upload), not in `request`.
    static func serialize(_ request: URLRequest, url: URL, host: String, port: Int, defaultPort: Int = 80, bodyLength: Int? = nil) throws -> [UInt8] {
        try serialize(
            method: request.httpMethod ?? "GET", url: url, host: host, port: port, headers: (request.allHTTPHeaderFields ?? [:]).map { ($0.key, $0.value) },
            body: request.httpBody, defaultPort: defaultPort, bodyLength: bodyLength)
    }

    static func serialize(
        method: String, url: URL, host: String, port: Int, headers: [(String, String)], body: Data?, defaultPort: Int = 80, bodyLength: Int? = nil
    ) throws -> [UInt8] {
        guard !method.isEmpty, method.utf8.allSatisfy(HTTP1ResponseParser.isTokenByte) else { throw URLError(.badURL) }
        let target = requestTarget(url.absoluteString)
        guard target.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else { throw URLError(.badURL) }
        let hostField = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        var bytes: [UInt8] = []
        bytes.reserveCapacity(512 + (body?.count ?? 0))
        bytes.append(contentsOf: "\(method) \(target) HTTP/1.1\r\nHost: \(hostField)\(port == defaultPort ? "" : ":\(port)")\r\n".utf8)
        var sawAccept = false
        var sawAgent = false
        for (name, value) in headers {
            // Framing and connection headers are the transport's own.
            switch name.lowercased() {
            // The answer is asked for uncompressed, whatever the caller set (`HTTPClient.uncompressed`).
            case "host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade", "te", "accept-encoding": continue
            case "accept": sawAccept = true
            case "user-agent": sawAgent = true
            default: break
            }
            let token = !name.isEmpty && name.utf8.allSatisfy(HTTP1ResponseParser.isTokenByte)
            guard token, !value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) else {
                throw HTTPClient.Failure.invalidHeader(name: token ? name : "(not a token)")
            }
            bytes.append(contentsOf: name.utf8)
            bytes.append(contentsOf: ": ".utf8)
            bytes.append(contentsOf: value.utf8)
            bytes.append(contentsOf: "\r\n".utf8)
        }
        if !sawAccept { bytes.append(contentsOf: "Accept: */*\r\n".utf8) }
        if !sawAgent { bytes.append(contentsOf: "User-Agent: CommandPipeline\r\n".utf8) }
        bytes.append(contentsOf: "Accept-Encoding: identity\r\n".utf8)
        if let bodyLength {
            bytes.append(contentsOf: "Content-Length: \(bodyLength)\r\n\r\n".utf8)
        } else if let body {
            bytes.append(contentsOf: "Content-Length: \(body.count)\r\n\r\n".utf8)
            bytes.append(contentsOf: body)
        } else if ["POST", "PUT", "PATCH"].contains(method.uppercased()) {
            bytes.append(contentsOf: "Content-Length: 0\r\n\r\n".utf8)
        } else {
            bytes.append(contentsOf: "\r\n".utf8)
        }
        return bytes
    }
}
