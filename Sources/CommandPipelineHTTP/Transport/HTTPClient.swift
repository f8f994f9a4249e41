import CommandPipeline
import Dispatch
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A thin, dependency-free HTTP client: connections are reused across calls, every request
/// has an idle timeout and an overall deadline, response bodies are capped, redirects are
/// never followed, and cancelling the awaiting task cancels the request. It never retries:
/// retrying is the engine's job (one retry layer).
///
/// Two paths behind one API (`Design/decisions/0007-http-transport.md`):
/// - `http://` and, on Linux, `https://` requests (`send`, `stream`, and `upload`, whose body
///   is read from its file as it goes out) go through our own HTTP/1.1 keep-alive client over
///   non-blocking sockets (`HTTP1/`), TLS through the system's OpenSSL (`HTTP1/TLS.swift`):
///   many times cheaper per request than `URLSession` on Linux;
/// - `https://` where there is no OpenSSL (Darwin) goes through one `URLSession`, each request
///   a delegate-driven task.
///
/// The same rules hold on every path: a 3xx comes back as the response, for the caller to
/// report; body bytes count against the cap; a request ends at its deadline; at most
/// `maxConnectionsPerHost` connections per host, further requests wait their turn; a server's
/// certificate is always verified (`caFile` adds a CA to trust, nothing turns it off).
/// `COMMANDPIPELINE_HTTP_TRANSPORT=urlsession` in the environment sends every request through
/// `URLSession` (for comparison and as an escape hatch; it does not read `caFile`).
public final class HTTPClient: Sendable {
    /// A complete response.
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]  // lowercased names
        public var body: Data
    }

    /// The head of a streamed response, then its body in pieces.
    public struct StreamedResponse: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: AsyncThrowingStream<Data, any Error>
    }

    /// Failures the client itself decides (everything else is the `URLError` URLSession gave).
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// The connection broke after the response head arrived: the body is incomplete.
        case connectionLost(receivedBytes: Int, underlying: URLError)
        /// The request ran past `resourceTimeout` in all (the server may still be trickling bytes).
        case deadlineExceeded(seconds: TimeInterval)
        /// The body (or its declared `Content-Length`) passed `maxResponseBytes`.
        case bodyTooLarge(limit: Int, declared: Int64?)
        /// A request header has a name that is not a token, or a value with CR, LF or NUL
        /// (it would inject headers); the request is not sent.
        case invalidHeader(name: String)
        /// The response is compressed (`Content-Encoding` other than `identity`) although every
        /// request asks for none (`Accept-Encoding: identity`): refused before its body is used,
        /// since a few megabytes of gzip can inflate to gigabytes (URLSession inflates on its own).
        case encodedBody(encoding: String)
        /// The TLS handshake did not succeed: nothing of the request was sent.
        case tls(TLSFailure)

        public var description: String {
            switch self {
            case .connectionLost(let received, let underlying):
                "connection lost after \(received) body bytes (\(underlying.localizedDescription))"
            case .deadlineExceeded(let seconds): "the request took longer than \(seconds) s in all"
            case .bodyTooLarge(let limit, let declared?): "the response declares \(declared) bytes, more than the \(limit)-byte limit"
            case .bodyTooLarge(let limit, nil): "the response body passed the \(limit)-byte limit"
            case .invalidHeader(let name): "the request header \(name) has a line break or a forbidden character; nothing was sent"
            case .encodedBody(let encoding): "the response is compressed (Content-Encoding: \(encoding)) although none was asked for"
            case .tls(let failure): failure.description
            }
        }
    }

    /// Why a TLS connection was not made (the own transport's `https://`). Nothing of the
    /// request — no header, no key — is sent before the handshake and its checks succeed.
    public struct TLSFailure: Error, Sendable, CustomStringConvertible {
        public enum Stage: Sendable {
            /// The certificate was refused: unknown CA, expired, another host's name.
            case verification
            /// The handshake failed: no common protocol version (TLS 1.2 is the minimum), a
            /// server that does not speak TLS, a connection closed during the handshake.
            case handshake
            /// The server did not finish the handshake in time.
            case timeout
            /// No TLS context: the CA file (`caFile`, `--ca-file`) or the system's store could not be read.
            case setup
        }

        /// The URL's host, as the certificate must name it ("" for `setup`).
        public var host: String
        public var stage: Stage
        /// OpenSSL's reason ("certificate has expired", "unsupported protocol").
        public var reason: String
        /// Whether trying again may succeed: a connection that broke or stalled during the
        /// handshake may; a refused certificate, protocol or CA file never does.
        public var retryable: Bool

        public init(host: String, stage: Stage, reason: String, retryable: Bool) {
            self.host = host
            self.stage = stage
            self.reason = reason
            self.retryable = retryable
        }

        public var description: String {
            switch stage {
            case .verification: "the TLS certificate of \(host) was refused: \(reason)"
            case .handshake: "the TLS handshake with \(host) failed: \(reason)"
            case .timeout: "the TLS handshake with \(host) did not finish: \(reason)"
            case .setup: "TLS could not be set up: \(reason)"
            }
        }
    }

    /// The URLSession path's session, made by the first request that takes that path: on
    /// Linux the own transport takes every request, and making a session costs ~3 ms of every
    /// run's start (its cookie storage, time zones).
    private let lazySession = Mutex<URLSession?>(nil)
    private let delegate: TaskDelegate
    /// The plain-http path; nil when `COMMANDPIPELINE_HTTP_TRANSPORT=urlsession`.
    private let http1: HTTP1Transport?
    /// Longest silence before the answer or between its pieces.
    public let requestTimeout: TimeInterval
    /// Longest time one request may take in all.
    public let resourceTimeout: TimeInterval
    /// Largest body read.
    public let maxResponseBytes: Int

    /// Connections per host on each path: as asked, but never more than
    /// `DescriptorLimit.connectionsPerPool()` allows.
    public let maxConnectionsPerHost: Int

    /// Connections to one host when nobody says how many requests will be in flight.
    public static let defaultMaxConnectionsPerHost = 64

    /// A PEM file of CA certificates trusted for `https://` besides the system's store (a
    /// private gateway, a test server); nil: the system's store alone.
    public let caFile: URL?

    /// Gets the headers of every answer (a router's deployment learns its limits from them).
    let responseHeaders: ResponseHeadersRelay?

    /// `caFile` is read when the first `https://` request is made; `caFileProblem` checks it
    /// beforehand (the CLI does, at start).
    package init(
        requestTimeout: TimeInterval = 120, resourceTimeout: TimeInterval = 600, maxResponseBytes: Int = 64 << 20,
        maxConnectionsPerHost: Int = HTTPClient.defaultMaxConnectionsPerHost, caFile: URL? = nil,
        responseHeaders: ResponseHeadersRelay? = nil
    ) {
        self.caFile = caFile
        self.responseHeaders = responseHeaders
        self.requestTimeout = requestTimeout
        self.resourceTimeout = resourceTimeout
        self.maxResponseBytes = max(0, maxResponseBytes)
        // Never more connections than the open-file limit allows (with room left for the rest
        // of the process): past it, requests wait for a connection instead of failing.
        let maxConnectionsPerHost = min(max(1, maxConnectionsPerHost), DescriptorLimit.connectionsPerPool())
        self.maxConnectionsPerHost = maxConnectionsPerHost
        delegate = TaskDelegate(resourceTimeout: resourceTimeout, maxResponseBytes: self.maxResponseBytes)
        let choice = ProcessInfo.processInfo.environment["COMMANDPIPELINE_HTTP_TRANSPORT"]?.lowercased()
        http1 =
            choice == "urlsession"
            ? nil
            : HTTP1Transport(
                maxConnectionsPerOrigin: maxConnectionsPerHost, maxResponseBytes: self.maxResponseBytes, resourceTimeout: resourceTimeout,
                caFile: caFile?.path)
    }

    /// Why `file` cannot serve as `caFile` (unreadable, not PEM certificates; or no own TLS on
    /// this platform), or nil when it can.
    public static func caFileProblem(_ file: URL) -> String? {
        TLSContext.problem(caFile: file.path)
    }

    deinit {
        lazySession.withLock { $0 }?.finishTasksAndInvalidate()
    }

    private var session: URLSession {
        lazySession.withLock { session in
            if let session { return session }
            let configuration = URLSessionConfiguration.ephemeral
            configuration.timeoutIntervalForRequest = requestTimeout
            configuration.httpMaximumConnectionsPerHost = maxConnectionsPerHost
            configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
            configuration.httpShouldSetCookies = false
            configuration.httpCookieAcceptPolicy = .never
            let made = URLSession(configuration: configuration, delegate: delegate, delegateQueue: InlineDelegateQueue.make())
            session = made
            return made
        }
    }

    public func send(_ request: URLRequest) async throws -> Response {
        let response =
            if let http1, HTTP1Transport.handles(request) {
                try await http1.send(request)
            } else {
                try await collect(start(session.dataTask(with: Self.uncompressed(request))))
            }
        responseHeaders?.report(response.headers)  // a router learns its deployment's limits
        return response
    }

    /// Sends a request whose body is read from `file` as it goes out (never whole in memory),
    /// with `Content-Length` the file's size.
    public func upload(_ request: URLRequest, fromFile file: URL) async throws -> Response {
        if let http1, HTTP1Transport.handles(request) { return try await http1.upload(request, fromFile: file) }
        return try await collect(start(session.uploadTask(with: Self.uncompressed(request), fromFile: file)))
    }

    /// Sends a `multipart/form-data` upload: on the own transport its head, the file streamed
    /// from its opened descriptor, and its tail, never copied (`MultipartBody`); a file whose
    /// size changes while it is sent fails the request (`OpenedFile.Failure`). URLSession uploads
    /// from a file, so that path alone writes the body to a temporary file first.
    func upload(_ request: URLRequest, multipart body: MultipartBody) async throws -> Response {
        var request = request
        request.setValue(body.contentType, forHTTPHeaderField: "Content-Type")
        return try await upload(request, head: body.head, file: body.file, tail: body.tail)
    }

    /// Sends `file` as the whole body (Gemini's resumable upload), streamed from the descriptor
    /// the engine opened it with, `Content-Length` its size when opened; never copied on the own
    /// transport. A file whose size changes while it is sent fails the request (`OpenedFile.Failure`).
    func upload(_ request: URLRequest, opened file: OpenedFile) async throws -> Response {
        try await upload(request, head: [], file: file, tail: [])
    }

    /// `head`, `file` streamed from its opened descriptor, `tail`: on the own transport as it goes
    /// out (read off the loop's thread, `HTTP1BodyReader`); URLSession uploads from a file, so
    /// that path alone writes the body to a private temporary file first.
    private func upload(_ request: URLRequest, head: [UInt8], file: OpenedFile, tail: [UInt8]) async throws -> Response {
        if let http1, HTTP1Transport.handles(request) {
            return try await http1.upload(request, body: try HTTP1FileBody(head: head, file: file, tail: tail))
        }
        let copy = try await PrivateTemporaryFile.body(head: head, file: file, tail: tail)
        defer { try? FileManager.default.removeItem(at: copy) }
        return try await collect(start(session.uploadTask(with: Self.uncompressed(request), fromFile: copy)))
    }

    /// Starts a request and returns as soon as the response head arrives; the body streams.
    /// Cancelling the consumer (or the awaiting task) cancels the request.
    public func stream(_ request: URLRequest) async throws -> StreamedResponse {
        let response =
            if let http1, HTTP1Transport.handles(request) {
                try await http1.stream(request)
            } else {
                try await start(session.dataTask(with: Self.uncompressed(request)))
            }
        responseHeaders?.report(response.headers)
        return response
    }

    /// Every request asks for an uncompressed answer (`Accept-Encoding: identity`), whatever the
    /// caller set: the body cap counts decoded bytes only if nothing is decoded. (URLSession on
    /// Linux would otherwise offer gzip, deflate, br and zstd and inflate before the cap sees a
    /// byte.) An answer compressed anyway is refused (`Failure.encodedBody`). The own transport
    /// writes the header itself as it serialises the request (`HTTP1Transport.serialize`): a copy
    /// of the `URLRequest` with one more header was ~5% of the CLI's CPU per request.
    static func uncompressed(_ request: URLRequest) -> URLRequest {
        var request = request
        request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        return request
    }

    /// The `Content-Encoding` of a response head when it is not the identity (which is refused).
    static func refusedEncoding(_ headers: [String: String]) -> String? {
        guard let value = headers["content-encoding"] else { return nil }
        let codings = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        guard codings.contains(where: { $0 != "identity" }) else { return nil }
        return String(value.prefix(40))
    }

    private func start(_ task: URLSessionTask) async throws -> StreamedResponse {
        try Task.checkCancellation()
        let (body, continuation) = AsyncThrowingStream<Data, any Error>.makeStream()
        let (status, headers) = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (head: CheckedContinuation<(Int, [String: String]), any Error>) in
                delegate.register(task, head: head, body: continuation)
                // A consumer that stops reading cancels the request. (Off this thread: the stream
                // also ends inside a delegate call, on the session's thread, which cancelling waits for.)
                continuation.onTermination = { @Sendable termination in
                    if case .cancelled = termination { DispatchQueue.global().async { task.cancel() } }
                }
                // Cancelled before registering: `onCancel` found nothing to end, so end it here
                // (a task cancelled before it resumes may never report its completion).
                if Task.isCancelled {
                    delegate.abandon(task)
                } else {
                    task.resume()
                }
            }
        } onCancel: { [delegate] in
            delegate.abandon(task)
        }
        return StreamedResponse(status: status, headers: headers, body: body)
    }

    private func collect(_ response: StreamedResponse) async throws -> Response {
        var body = Data()
        for try await piece in response.body { body.append(piece) }
        // A cancelled consumer sees the stream end early, not an error: say what happened.
        try Task.checkCancellation()
        return Response(status: response.status, headers: response.headers, body: body)
    }

    static func headers(of response: URLResponse?) -> [String: String] {
        guard let http = response as? HTTPURLResponse else { return [:] }
        var headers: [String: String] = [:]
        for (key, value) in http.allHeaderFields {
            if let key = key as? String, let value = value as? String { headers[key.lowercased()] = value }
        }
        return headers
    }
}

/// The queue URLSession calls its delegate on. On Linux (swift-corelibs-foundation) each call
/// runs at once on the thread that makes it, libcurl's: libcurl inflates a compressed answer on
/// that thread and does not wait for a queued delegate, so with a queue of its own a few
/// megabytes of gzip became gigabytes of queued pieces before the body cap saw the first. Run
/// inline, each piece is counted (and, past the cap or after a refusal, dropped) as it is made.
/// The delegate's methods are short and never wait on the session (`TaskDelegate.fail` cancels
/// from another queue: cancelling waits for the very thread that calls it).
enum InlineDelegateQueue {
    static func make() -> OperationQueue? {
        #if canImport(FoundationNetworking)
        return Inline()
        #else
        return nil
        #endif
    }

    #if canImport(FoundationNetworking)
    private final class Inline: OperationQueue, @unchecked Sendable {
        override func addOperation(_ block: @Sendable @escaping () -> Void) { block() }
    }
    #endif
}

/// Drives every task of the client's session: delivers the head and the body pieces,
/// refuses redirects, enforces the body cap and the per-request deadline.
final class TaskDelegate: NSObject, URLSessionDataDelegate, Sendable {
    private struct Entry {
        var head: CheckedContinuation<(Int, [String: String]), any Error>?
        var body: AsyncThrowingStream<Data, any Error>.Continuation
        var received = 0
        /// Set when the client ends the task itself (deadline, body cap): reported instead of `cancelled`.
        var failure: HTTPClient.Failure?
        var deadline: Deadline?
    }

    /// A task's deadline timer. Dispatch sources are thread-safe; Swift does not mark them `Sendable`.
    private final class Deadline: @unchecked Sendable {
        let source: any DispatchSourceTimer
        init(_ source: any DispatchSourceTimer) { self.source = source }
    }

    private let entries = Mutex<[Int: Entry]>([:])
    private let resourceTimeout: TimeInterval
    private let maxResponseBytes: Int

    init(resourceTimeout: TimeInterval, maxResponseBytes: Int) {
        self.resourceTimeout = resourceTimeout
        self.maxResponseBytes = maxResponseBytes
    }

    func register(_ task: URLSessionTask, head: CheckedContinuation<(Int, [String: String]), any Error>, body: AsyncThrowingStream<Data, any Error>.Continuation) {
        let id = task.taskIdentifier
        let timer = DispatchSource.makeTimerSource(queue: .global())
        let seconds = resourceTimeout
        timer.schedule(deadline: .now() + (seconds.isFinite ? max(0, min(seconds, 1e9)) : 1e9))
        timer.setEventHandler { [weak self] in self?.fail(task, id, .deadlineExceeded(seconds: seconds)) }
        let deadline = Deadline(timer)
        entries.withLock { $0[id] = Entry(head: head, body: body, deadline: deadline) }
        timer.resume()
    }

    /// Ends `task` as cancelled at once, on our side too: its awaiting caller resumes even if
    /// URLSession never reports the completion.
    func abandon(_ task: URLSessionTask) {
        let entry = entries.withLock { $0.removeValue(forKey: task.taskIdentifier) }
        task.cancel()
        guard let entry else { return }
        entry.deadline?.source.cancel()
        entry.head?.resume(throwing: CancellationError())
        entry.body.finish(throwing: CancellationError())
    }

    /// Ends `task` with `failure` (unless it already ended).
    private func fail(_ task: URLSessionTask, _ id: Int, _ failure: HTTPClient.Failure) {
        let body = entries.withLock { entries -> AsyncThrowingStream<Data, any Error>.Continuation? in
            guard entries[id] != nil, entries[id]?.failure == nil else { return nil }
            entries[id]?.failure = failure
            return entries[id]?.body
        }
        guard body != nil else { return }
        // Not here: this may run on the session's own thread (an inline delegate call), and
        // cancelling waits for that thread.
        DispatchQueue.global().async { task.cancel() }
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
        completionHandler: @escaping (URLRequest?) -> Void
    ) {
        // Never followed: the 3xx itself becomes the response, and the caller reports it.
        // Following would carry the Authorization header (or lose the body) to wherever it points.
        completionHandler(nil)
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        let id = dataTask.taskIdentifier
        let declared = response.expectedContentLength
        if declared > Int64(maxResponseBytes) {
            fail(dataTask, id, .bodyTooLarge(limit: maxResponseBytes, declared: declared))
            completionHandler(.cancel)
            return
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let headers = HTTPClient.headers(of: response)
        if let encoding = HTTPClient.refusedEncoding(headers) {
            // URLSession is already inflating it on its own thread: end the task now; what it
            // inflates before the cancellation lands is dropped as it arrives, never kept.
            fail(dataTask, id, .encodedBody(encoding: encoding))
            completionHandler(.cancel)
            return
        }
        let head = entries.withLock { entries -> CheckedContinuation<(Int, [String: String]), any Error>? in
            defer { entries[id]?.head = nil }
            return entries[id]?.head
        }
        head?.resume(returning: (status, headers))
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let id = dataTask.taskIdentifier
        let limit = maxResponseBytes
        let (body, over) = entries.withLock { entries -> (AsyncThrowingStream<Data, any Error>.Continuation?, Bool) in
            guard let entry = entries[id], entry.failure == nil else { return (nil, false) }
            let (total, overflow) = entry.received.addingReportingOverflow(data.count)
            entries[id]?.received = overflow ? .max : total
            return (entry.body, overflow || total > limit)
        }
        if over {
            fail(dataTask, id, .bodyTooLarge(limit: limit, declared: nil))
        } else {
            body?.yield(data)
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        guard let entry = entries.withLock({ $0.removeValue(forKey: task.taskIdentifier) }) else { return }
        entry.deadline?.source.cancel()
        var failure: (any Error)?
        if let own = entry.failure {
            failure = own
        } else if let error {
            let urlError = error as? URLError
            switch urlError?.code {
            case .cancelled?: failure = CancellationError()
            case .timedOut?: failure = error
            case _? where entry.head == nil:
                // The head came, then the transfer broke: a Content-Length not met, a chunked body cut.
                failure = HTTPClient.Failure.connectionLost(receivedBytes: entry.received, underlying: urlError!)
            default: failure = error
            }
        }
        if let head = entry.head {
            if failure == nil, let response = task.response as? HTTPURLResponse {
                head.resume(returning: (response.statusCode, HTTPClient.headers(of: response)))
            } else {
                head.resume(throwing: failure ?? URLError(.badServerResponse))
            }
        }
        if let failure { entry.body.finish(throwing: failure) } else { entry.body.finish() }
    }
}
