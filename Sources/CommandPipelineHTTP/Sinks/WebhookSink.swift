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
    private let exchange: ProviderExchange<WebhookErrors>
    private let retrier: Retrier
    private let filter: (@Sendable (ResultDelivery) -> Bool)?
    private let pending = Mutex<[ResultDelivery]>([])
    private let shown: String

    /// - Parameters:
    ///   - url: an `http` or `https` URL. Plain http goes only to this machine unless `allowInsecureHTTP`.
    ///   - batchSize: results per POST, 1–10,000.
    ///   - retryPolicy: how each POST is retried (the engine's `RetryPolicy`).
    ///   - headers: extra request headers (e.g. an `Authorization` the receiver wants); never shown.
    ///   - caFile: a PEM file of CAs to trust besides the system's (`--ca-file`), for a receiver
    ///     behind a private CA.
    public init(
        url: URL, priority: Int = 100, batchSize: Int = 50, retryPolicy: RetryPolicy = RetryPolicy(), clock: (any PipelineClock)? = nil,
        headers: [String: String] = [:], allowInsecureHTTP: Bool = false, requestTimeout: TimeInterval = 30, caFile: URL? = nil,
        filter: (@Sendable (ResultDelivery) -> Bool)? = nil
    ) throws(APIError) {
        let shown = Self.display(url)
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty else {
            throw APIError(.invalidCommand, "the webhook URL \(shown) is not an http:// or https:// URL with a host")
        }
        if let problem = EndpointRules.problem(
            url: url, what: "the webhook URL", secret: "results", fix: "give the receiver's credentials as a header instead", allowInsecureHTTP: allowInsecureHTTP,
            provider: nil)
        {
            throw problem
        }
        guard (1...10_000).contains(batchSize) else {
            throw APIError(.invalidCommand, "the webhook batch size must be from 1 to 10000, got \(batchSize)")
        }
        self.url = url
        self.priority = priority
        self.batchSize = batchSize
        self.filter = filter
        self.shown = shown
        name = "webhook(\(shown))"
        retrier = Retrier(policy: retryPolicy, clock: clock ?? SystemClock())
        let client = HTTPClient(requestTimeout: requestTimeout, resourceTimeout: requestTimeout * 2, maxResponseBytes: 1 << 20, maxConnectionsPerHost: 4, caFile: caFile)
        let transport = TransportErrors(
            providerName: "webhook", displayBaseURL: shown, requestTimeout: requestTimeout, deadlineSetting: "the webhook's request timeout",
            bodyLimitSetting: "the webhook's 1 MiB answer limit", urlSetting: "the webhook URL",
            text: ServerText(secrets: Array(headers.values)))  // a receiver's answer may echo the headers it got
        // The extra headers (an `Authorization` the receiver wants) go with every POST, like a provider's key.
        exchange = ProviderExchange(client: client, errors: WebhookErrors(transport: transport), endpointProblem: nil, credentials: headers, requestTimeout: requestTimeout)
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
        var request = exchange.request(url)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue(Self.idempotencyKey(of: batch), forHTTPHeaderField: "Idempotency-Key")
        request.httpBody = Self.body(of: batch)
        let first = batch.first?.commandID ?? "", last = batch.last?.commandID ?? ""
        let what = batch.count == 1 ? "'\(first)'" : "\(batch.count) results ('\(first)' … '\(last)')"
        let outcome = await retrier.run(cancelled: APIError(.cancelled, "POST of \(what) to \(shown) was cancelled")) { _ in
            do throws(APIError) {
                _ = try await exchange.send(request)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let error) = outcome.result {
            let tries = outcome.attempts == 1 ? "1 attempt" : "\(outcome.attempts) attempts"
            throw APIError(error.kind, "POST of \(what) to \(shown): \(error.message) (after \(tries))", retryable: error.retryable, code: error.code)
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

/// A receiver's answer other than a 2xx: 408, 409, 425, 429 and 5xx are worth another POST
/// (honouring `Retry-After`), the rest are not; a redirect is never followed.
struct WebhookErrors: ProviderErrorMapping {
    let transport: TransportErrors

    func error(status: Int, headers: [String: String], body: Data, endpoint: String) -> APIError {
        if (300..<400).contains(status) { return transport.redirect(status: status, headers: headers, endpoint: endpoint) }
        let retryable = [408, 409, 425, 429].contains(status) || (500...599).contains(status)
        let error = APIError(
            .providerError, "HTTP \(status) from \(endpoint): \(transport.text.preview(body, limit: 200))", retryable: retryable, code: "http_\(status)")
        return RetryHint.apply(to: error, status: status, headers: headers)
    }
}

/// SHA-256 as hex, over strings (the package's own implementation).
struct SHA256Digest {
    private var hasher = SHA256()
    mutating func update(_ text: String) { hasher.update(text) }
    var hex: String { hasher.finalizeHex() }
}
