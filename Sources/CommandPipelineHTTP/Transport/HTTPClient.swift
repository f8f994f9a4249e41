import CommandPipeline
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A thin, dependency-free HTTP client over one `URLSession`: connections are reused
/// across calls, every request has a timeout, and cancelling the awaiting task cancels
/// the request. It never retries: retrying is the engine's job (one retry layer).
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

    /// One session for every request of the adapter; its delegate serves only streaming tasks.
    private let session: URLSession
    private let streamDelegate: StreamingDelegate
    public let requestTimeout: TimeInterval

    public init(requestTimeout: TimeInterval = 120, maxConnectionsPerHost: Int = 64) {
        self.requestTimeout = requestTimeout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = requestTimeout
        configuration.httpMaximumConnectionsPerHost = maxConnectionsPerHost
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        streamDelegate = StreamingDelegate()
        session = URLSession(configuration: configuration, delegate: streamDelegate, delegateQueue: nil)
    }

    deinit {
        session.finishTasksAndInvalidate()
    }

    public func send(_ request: URLRequest) async throws -> Response {
        let (data, response) = try await cancellable { try await self.session.data(for: request) }
        return Response(status: (response as? HTTPURLResponse)?.statusCode ?? 0, headers: Self.headers(of: response), body: data)
    }

    /// Sends a request whose body is read from `file` as it goes out (never whole in memory).
    public func upload(_ request: URLRequest, fromFile file: URL) async throws -> Response {
        let (data, response) = try await cancellable { try await self.session.upload(for: request, fromFile: file) }
        return Response(status: (response as? HTTPURLResponse)?.statusCode ?? 0, headers: Self.headers(of: response), body: data)
    }

    /// Starts a request and returns as soon as the response head arrives; the body streams.
    /// Cancelling the consumer (or the awaiting task) cancels the request.
    public func stream(_ request: URLRequest) async throws -> StreamedResponse {
        let task = session.dataTask(with: request)
        let (body, continuation) = AsyncThrowingStream<Data, any Error>.makeStream()
        let (status, headers) = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (head: CheckedContinuation<(Int, [String: String]), any Error>) in
                streamDelegate.register(task, head: head, body: continuation)
                continuation.onTermination = { @Sendable _ in task.cancel() }
                task.resume()
            }
        } onCancel: {
            task.cancel()
        }
        return StreamedResponse(status: status, headers: headers, body: body)
    }

    /// Runs a URLSession async call so that cancelling the task cancels the request promptly
    /// (and surfaces as `CancellationError`).
    private func cancellable<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try Task.checkCancellation()
        let task = Task { try await body() }
        return try await withTaskCancellationHandler {
            do {
                return try await task.value
            } catch let error as URLError where error.code == .cancelled {
                throw CancellationError()
            }
        } onCancel: {
            task.cancel()
        }
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

/// Delivers the head and the body pieces of streaming data tasks.
final class StreamingDelegate: NSObject, URLSessionDataDelegate, Sendable {
    private struct Entry {
        var head: CheckedContinuation<(Int, [String: String]), any Error>?
        var body: AsyncThrowingStream<Data, any Error>.Continuation
    }

    private let entries = Mutex<[Int: Entry]>([:])

    func register(_ task: URLSessionTask, head: CheckedContinuation<(Int, [String: String]), any Error>, body: AsyncThrowingStream<Data, any Error>.Continuation) {
        entries.withLock { $0[task.taskIdentifier] = Entry(head: head, body: body) }
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let head = entries.withLock { entries -> CheckedContinuation<(Int, [String: String]), any Error>? in
            defer { entries[dataTask.taskIdentifier]?.head = nil }
            return entries[dataTask.taskIdentifier]?.head
        }
        head?.resume(returning: (status, HTTPClient.headers(of: response)))
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        entries.withLock { $0[dataTask.taskIdentifier]?.body }?.yield(data)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        guard let entry = entries.withLock({ $0.removeValue(forKey: task.taskIdentifier) }) else { return }
        let failure: (any Error)? = error.map { ($0 as? URLError)?.code == .cancelled ? CancellationError() : $0 }
        if let head = entry.head {
            head.resume(throwing: failure ?? URLError(.badServerResponse))
        }
        if let failure { entry.body.finish(throwing: failure) } else { entry.body.finish() }
    }
}

