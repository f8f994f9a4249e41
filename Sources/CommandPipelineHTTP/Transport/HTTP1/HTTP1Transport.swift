import Dispatch
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `HTTPClient`'s path for plain `http://`: HTTP/1.1 with keep-alive over non-blocking
/// sockets, one I/O thread (`HTTP1EventLoop`) started on first use. Same rules as the
/// `URLSession` path: redirects are returned, never followed; idle timeout and overall
/// deadline; body cap; cancelling the awaiting task (or the body's consumer) closes the
/// connection. See `Design/decisions/0007-http-transport.md`.
final class HTTP1Transport: Sendable {
    let maxConnectionsPerOrigin: Int
    let maxResponseBytes: Int
    let resourceTimeout: TimeInterval
    private let loop = Mutex<HTTP1EventLoop?>(nil)
    private let addresses = Mutex<[String: (addresses: [SocketAddress], expires: UInt64)]>([:])
    /// Names are looked up again after this long (a load balancer's DNS may move).
    static let addressLifetime: UInt64 = 30_000_000_000

    init(maxConnectionsPerOrigin: Int, maxResponseBytes: Int, resourceTimeout: TimeInterval) {
        self.maxConnectionsPerOrigin = max(1, maxConnectionsPerOrigin)
        self.maxResponseBytes = maxResponseBytes
        self.resourceTimeout = resourceTimeout
    }

    deinit {
        loop.withLock { $0?.shutdown() }
    }

    /// Whether this path takes `request`: plain http with a host, a body in memory (or none).
    static func handles(_ request: URLRequest) -> Bool {
        guard let url = request.url, url.scheme?.lowercased() == "http", let host = url.host, !host.isEmpty else { return false }
        return request.httpBodyStream == nil
    }

    func send(_ request: URLRequest) async throws -> HTTPClient.Response {
        let exchange = try await prepare(request)
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

    private func prepare(_ request: URLRequest) async throws -> HTTP1Exchange {
        try Task.checkCancellation()
        guard let url = request.url, let host = url.host else { throw URLError(.badURL) }
        let port = url.port ?? 80
        guard (1...65_535).contains(port) else { throw URLError(.badURL) }
        let origin = "\(host.lowercased()):\(port)"
        let bytes = try Self.serialize(request, url: url, host: host, port: port)
        let resolved = try await resolve(host: host, port: port, origin: origin)
        let idle = request.timeoutInterval > 0 ? request.timeoutInterval : 60
        return HTTP1Exchange(
            origin: origin, addresses: resolved, request: bytes, isHead: bytes.starts(with: Array("HEAD ".utf8)), idleTimeout: idle,
            resourceTimeout: resourceTimeout, maxBodyBytes: maxResponseBytes)
    }

    /// Sets the addresses a host:port resolves to (for tests: a name with several addresses).
    func remember(_ found: [SocketAddress], host: String, port: Int) {
        addresses.withLock { $0["\(host.lowercased()):\(port)"] = (found, HTTP1EventLoop.now() &+ Self.addressLifetime) }
    }

    private func resolve(host: String, port: Int, origin: String) async throws -> [SocketAddress] {
        let now = HTTP1EventLoop.now()
        if let cached = addresses.withLock({ $0[origin] }), cached.expires > now { return cached.addresses }
        // An IP literal needs no lookup; a name is looked up off the cooperative pool (getaddrinfo blocks).
        let found = await withCheckedContinuation { (continuation: CheckedContinuation<[SocketAddress], Never>) in
            DispatchQueue.global().async { continuation.resume(returning: Sockets.resolve(host: host, port: port)) }
        }
        guard !found.isEmpty else { throw URLError(.cannotFindHost) }
        addresses.withLock { $0[origin] = (found, now &+ Self.addressLifetime) }
        return found
    }

    /// "/path?query" of an absolute URL string (already percent-encoded, as `URL` keeps it):
    /// what follows the authority, without the fragment; "/" when empty.
    static func requestTarget(_ absolute: String) -> String {
        let bytes = Array(absolute.utf8)
        guard let schemeEnd = bytes.firstRange(of: Array("://".utf8))?.upperBound else { return "/" }
        let start = bytes[schemeEnd...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? bytes.endIndex
        let end = bytes[start...].firstIndex(of: UInt8(ascii: "#")) ?? bytes.endIndex
        let target = String(decoding: bytes[start..<end], as: UTF8.self)
        return target.hasPrefix("/") ? target : "/" + target
    }

    /// The request as bytes on the wire. Header names must be tokens and values free of CR,
    /// LF and NUL: a key with a line break in its variable would otherwise inject headers.
    static func serialize(_ request: URLRequest, url: URL, host: String, port: Int) throws -> [UInt8] {
        try serialize(
            method: request.httpMethod ?? "GET", url: url, host: host, port: port, headers: (request.allHTTPHeaderFields ?? [:]).map { ($0.key, $0.value) },
            body: request.httpBody)
    }

    static func serialize(method: String, url: URL, host: String, port: Int, headers: [(String, String)], body: Data?) throws -> [UInt8] {
        guard !method.isEmpty, method.utf8.allSatisfy(HTTP1ResponseParser.isTokenByte) else { throw URLError(.badURL) }
        let target = requestTarget(url.absoluteString)
        guard target.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else { throw URLError(.badURL) }
        let hostField = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        var bytes: [UInt8] = []
        bytes.reserveCapacity(512 + (body?.count ?? 0))
        bytes.append(contentsOf: "\(method) \(target) HTTP/1.1\r\nHost: \(hostField)\(port == 80 ? "" : ":\(port)")\r\n".utf8)
        var sawAccept = false
        var sawAgent = false
        for (name, value) in headers {
            // Framing and connection headers are the transport's own.
            switch name.lowercased() {
            case "host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade", "te": continue
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
        if let body {
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
