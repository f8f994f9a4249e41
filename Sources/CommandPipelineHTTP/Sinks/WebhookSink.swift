import CommandPipeline
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// POSTs results to a URL in batches, as JSON:
///
///     POST <url>
///     Content-Type: application/json
///     Idempotency-Key: <run id>/<command id>          (one result)
///                      <run id>/batch-<sha256 of the results' keys>   (several)
///
///     {"run_id": "…", "results": [{"idempotency_key": "…", "command_id": "…", "index": 0,
///                                  "status": "succeeded", "result": {…the result line…}}, …]}
///
/// A batch goes out when `batchSize` results are waiting, and the rest at the end of the run
/// (`finish`). Each POST is retried by the engine's one retry layer (`Retrier`): connection
/// failures, 408, 409, 425, 429 and 5xx are retried (honouring `Retry-After`); other statuses
/// are not. The same batch always carries the same `Idempotency-Key`, so a receiver can drop a
/// retried or re-run batch it already has. Redirects are never followed (a 3xx fails the batch).
///
/// The URL is shown without its query and userinfo in names and errors: a token in it never
/// reaches a log.
public final class WebhookSink: ResultSink {
    public let name: String
    public let priority: Int
    public let url: URL
    public let batchSize: Int
    private let client: HTTPClient
    private let retrier: Retrier
    private let headers: [String: String]
    private let filter: (@Sendable (ResultDelivery) -> Bool)?
    private let pending = Mutex<[ResultDelivery]>([])
    private let shown: String

    /// - Parameters:
    ///   - url: an `http` or `https` URL. Plain http goes only to this machine unless `allowInsecureHTTP`.
    ///   - batchSize: results per POST, 1–10,000.
    ///   - retryPolicy: how each POST is retried (the engine's `RetryPolicy`).
    ///   - headers: extra request headers (e.g. an `Authorization` the receiver wants); never shown.
    public init(
        url: URL, priority: Int = 100, batchSize: Int = 50, retryPolicy: RetryPolicy = RetryPolicy(), clock: any PipelineClock = SystemClock(),
        headers: [String: String] = [:], allowInsecureHTTP: Bool = false, requestTimeout: TimeInterval = 30,
        filter: (@Sendable (ResultDelivery) -> Bool)? = nil
    ) throws(APIError) {
        let shown = Self.display(url)
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty else {
            throw APIError(.invalidCommand, "the webhook URL \(shown) is not an http:// or https:// URL with a host")
        }
        if url.user != nil || url.password != nil {
            throw APIError(.invalidCommand, "the webhook URL \(shown) carries user:password@; credentials in URLs end up in logs, so they are refused")
        }
        if scheme == "http" && !EndpointRules.isLoopbackHost(host) && !allowInsecureHTTP {
            throw APIError(
                .invalidCommand,
                "refusing to send results over plain http to \(shown): anyone on the path could read them; use https:// or, if the network path is trusted, pass --allow-insecure-http")
        }
        guard (1...10_000).contains(batchSize) else {
            throw APIError(.invalidCommand, "the webhook batch size must be from 1 to 10000, got \(batchSize)")
        }
        self.url = url
        self.priority = priority
        self.batchSize = batchSize
        self.headers = headers
        self.filter = filter
        self.shown = shown
        name = "webhook(\(shown))"
        retrier = Retrier(policy: retryPolicy, clock: clock)
        client = HTTPClient(requestTimeout: requestTimeout, resourceTimeout: requestTimeout * 2, maxResponseBytes: 1 << 20, maxConnectionsPerHost: 4)
    }

    public func enabled(for delivery: ResultDelivery) -> Bool { filter?(delivery) ?? true }

    public func deliver(_ delivery: ResultDelivery) async throws {
        let batch = pending.withLock { waiting -> [ResultDelivery]? in
            waiting.append(delivery)
            guard waiting.count >= batchSize else { return nil }
            defer { waiting.removeAll(keepingCapacity: true) }
            return waiting
        }
        if let batch { try await post(batch) }
    }

    /// Sends what is still batched.
    public func finish() async throws {
        let batch = pending.withLock { waiting -> [ResultDelivery] in
            defer { waiting.removeAll() }
            return waiting
        }
        if !batch.isEmpty { try await post(batch) }
    }

    /// The `Idempotency-Key` of a batch: the delivery's own key for one result; for several,
    /// the run id and a digest of their keys (the same batch always gets the same key).
    public static func idempotencyKey(of batch: [ResultDelivery]) -> String {
        if batch.count == 1 { return batch[0].idempotencyKey }
        var digest = SHA256Digest()
        for delivery in batch {
            digest.update(delivery.idempotencyKey)
            digest.update("\n")
        }
        return (batch.first?.runID ?? "") + "/batch-" + digest.hex
    }

    /// The request body for `batch` (the result records are embedded as they are).
    public static func body(of batch: [ResultDelivery]) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(batch.reduce(64) { $0 + $1.record.count + 128 })
        JSONSerializer.raw(#"{"run_id":"#, to: &out)
        JSONSerializer.writeString(batch.first?.runID ?? "", to: &out)
        JSONSerializer.raw(#","results":["#, to: &out)
        for (i, delivery) in batch.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONSerializer.raw(#"{"idempotency_key":"#, to: &out)
            JSONSerializer.writeString(delivery.idempotencyKey, to: &out)
            JSONSerializer.raw(#","command_id":"#, to: &out)
            JSONSerializer.writeString(delivery.commandID, to: &out)
            JSONSerializer.raw(#","index":"#, to: &out)
            JSONSerializer.writeInt(delivery.index, to: &out)
            JSONSerializer.raw(#","status":""#, to: &out)
            out.append(contentsOf: delivery.status.rawValue.utf8)
            JSONSerializer.raw(#"","result":"#, to: &out)
            out.append(contentsOf: delivery.record)
            out.append(UInt8(ascii: "}"))
        }
        JSONSerializer.raw("]}", to: &out)
        return Data(out)
    }

    private func post(_ batch: [ResultDelivery]) async throws {
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue(Self.idempotencyKey(of: batch), forHTTPHeaderField: "Idempotency-Key")
        for (field, value) in headers { request.setValue(value, forHTTPHeaderField: field) }
        request.httpBody = Self.body(of: batch)
        let first = batch.first?.commandID ?? "", last = batch.last?.commandID ?? ""
        let what = batch.count == 1 ? "'\(first)'" : "\(batch.count) results ('\(first)' … '\(last)')"
        let outcome = await retrier.run(cancelled: APIError(.cancelled, "POST of \(what) to \(shown) was cancelled")) { _ in
            await attempt(request, what: what)
        }
        if case .failure(let error) = outcome.result {
            let tries = outcome.attempts == 1 ? "1 attempt" : "\(outcome.attempts) attempts"
            throw APIError(error.kind, "\(error.message) (after \(tries))", retryable: error.retryable, code: error.code)
        }
    }

    private func attempt(_ request: URLRequest, what: String) async -> Result<Void, APIError> {
        let response: HTTPClient.Response
        do {
            response = try await client.send(request)
        } catch is CancellationError {
            return .failure(APIError(.cancelled, "POST of \(what) to \(shown) was cancelled"))
        } catch {
            // Connection refused, reset, timed out: worth another try.
            let reason = (error as? URLError).map { "\($0.code.rawValue): \($0.localizedDescription)" } ?? String(describing: error)
            return .failure(APIError(.providerError, "POST of \(what) to \(shown) failed: \(reason.prefix(200))", retryable: true, code: "transport"))
        }
        switch response.status {
        case 200..<300:
            return .success(())
        case 300..<400:
            return .failure(APIError(
                .providerError, "POST of \(what) to \(shown) answered HTTP \(response.status), a redirect; redirects are not followed: give the final URL",
                retryable: false, code: "redirect"))
        case 408, 409, 425, 429, 500...599:
            return .failure(APIError(
                .providerError, "POST of \(what) to \(shown) answered HTTP \(response.status)", retryable: true, code: "http_\(response.status)",
                retryAfter: OpenAIErrorMapping.retryAfter(response.headers)))
        default:
            return .failure(APIError(.providerError, "POST of \(what) to \(shown) answered HTTP \(response.status)", retryable: false, code: "http_\(response.status)"))
        }
    }

    /// `scheme://host:port/path`: no userinfo, query or fragment (where tokens hide).
    static func display(_ url: URL) -> String {
        var components = URLComponents()
        components.scheme = url.scheme
        components.host = url.host
        components.port = url.port
        components.path = url.path
        let text = components.string ?? "(webhook)"
        return url.query == nil ? text : text + "?…"
    }
}

/// SHA-256 as hex, over strings (the package's own implementation).
struct SHA256Digest {
    private var hasher = SHA256()
    mutating func update(_ text: String) { hasher.update(text) }
    var hex: String { hasher.finalizeHex() }
}
