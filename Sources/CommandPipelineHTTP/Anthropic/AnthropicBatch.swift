import CommandPipeline
import CommandPipelineBatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Anthropic's Message Batches: `POST /v1/messages/batches` with `{"requests":[{"custom_id",
/// "params"}]}` (params built by `AnthropicRequestBuilder` exactly as `generate` builds its
/// body), `GET …/{id}` until `processing_status` is `ended`, then the JSONL at `results_url`
/// (any order: matched on `custom_id`). The key goes to `results_url` only when it is on the
/// base URL's origin; a relative `results_url` is resolved against that origin.
///
/// A message batch has no label: `findBatch` recognises an in-doubt submission by its size and
/// time (created since the marker's `notBefore`, minus five minutes of clock skew, with the
/// marker's request count, and not one of `knownJobs`), and says `ambiguous` when several fit.
extension AnthropicAdapter: BatchCapability, BatchOffering {
    /// 100,000 requests and 256 MB a batch.
    public var batchLimits: BatchLimits { BatchLimits(maxRequests: 100_000, maxBytes: 256_000_000) }

    public func batchSize(of request: BatchRequest) throws -> Int {
        var bytes: [UInt8] = []
        JSONSerializer.write(try core.batchEntry(request), to: &bytes)
        return bytes.count + 1
    }

    public func submitBatch(_ requests: [BatchRequest], marker: BatchMarker) async throws -> BatchJob {
        try await scrub.scrubbing { try scrub.scrub(try await core.submitBatch(requests)) }
    }

    public func findBatch(_ marker: BatchMarker) async throws -> BatchLookup { try await scrub.scrubbing { try scrub.scrub(try await core.findBatch(marker)) } }

    public func batchStatus(_ jobID: String) async throws -> BatchJob {
        try await scrub.scrubbing { try scrub.scrub(try core.job(try await core.get("messages/batches/\(try core.checked(jobID))"))) }
    }

    public func batchResults(_ jobID: String) async throws -> [BatchResult] { try await batchResultSet(jobID).results }

    public func batchResultSet(_ jobID: String) async throws -> BatchResultSet {
        try await scrub.scrubbing { scrub.scrub(try await core.batchResults(jobID)) }
    }

    public func cancelBatch(_ jobID: String) async throws -> BatchJob {
        try await scrub.scrubbing { try scrub.scrub(try core.job(try await core.send("POST", core.configuration.endpoint("messages/batches/\(try core.checked(jobID))/cancel")))) }
    }
}

extension AnthropicCore {
    private var name: String { AnthropicProvider.name }

    func batchEntry(_ item: BatchRequest) throws(APIError) -> JSONValue {
        if let cache = item.request.cache, cache.prefixPartCount == nil {
            throw APIError(.invalidCommand, "a batch request cannot use the stored cache '\(cache.id)'", provider: name)
        }
        return ["custom_id": .string(item.id), "params": try builder.body(for: item.request, purpose: .generate(stream: false))]
    }

    /// A batch id, checked before it goes into a URL path.
    func checked(_ id: String) throws(APIError) -> String {
        guard OpenAICore.isSafeID(id) else { throw APIError(.invalidCommand, "'\(id)' is not a message batch id", provider: name) }
        return id
    }

    /// Sends a request to `url` (which must be on the base URL's origin) and returns the 2xx body.
    func send(_ method: String, _ url: URL, json: JSONValue? = nil) async throws(APIError) -> Data {
        try await exchange.send(exchange.request(url, method: method, json: json)).body
    }

    func get(_ path: String, query: [URLQueryItem] = []) async throws(APIError) -> JSONObject {
        try object(try await send("GET", configuration.endpoint(path).appendingQuery(query)))
    }

    private func object(_ data: Data) throws(APIError) -> JSONObject {
        guard case .object(let object) = try AnthropicResponses.parse(data, provider: name) else {
            throw APIError(.providerError, "the server's answer is not a JSON object", provider: name)
        }
        return object
    }

    func job(_ data: Data) throws(APIError) -> BatchJob { try job(try object(data)) }

    func job(_ object: JSONObject) throws(APIError) -> BatchJob {
        guard let id = object["id"]?.stringValue, OpenAICore.isSafeID(id) else {
            throw APIError(.providerError, "a message batch without a usable id", provider: name)
        }
        let counts = object["request_counts"]?.objectValue
        let count = { (key: String) in OpenAIResponses.tokens(counts?[key]) ?? 0 }
        let processing = count("processing"), succeeded = count("succeeded"), errored = count("errored")
        let canceled = count("canceled"), expired = count("expired")
        let total = [processing, succeeded, errored, canceled, expired].reduce(0) { $0.addingReportingOverflow($1).partialValue }
        let state: BatchJob.State
        switch object["processing_status"]?.stringValue {
        case "in_progress"?: state = succeeded + errored + canceled + expired == 0 ? .pending : .running
        case "canceling"?: state = .cancelling
        case "ended"?:
            if canceled > 0 && succeeded + errored == 0 { state = .cancelled } else if expired > 0 && succeeded + errored == 0 { state = .expired } else { state = .completed }
        case let other:
            throw APIError(.providerError, "message batch \(id) has an unknown processing_status '\(errors.preview(other ?? "none", limit: 40))'", provider: name)
        }
        return BatchJob(id: id, state: state, counts: BatchCounts(total: total, succeeded: succeeded, failed: errored + canceled + expired))
    }

    func submitBatch(_ requests: [BatchRequest]) async throws(APIError) -> BatchJob {
        var entries: [JSONValue] = []
        entries.reserveCapacity(requests.count)
        for item in requests { entries.append(try batchEntry(item)) }
        return try job(try await send("POST", configuration.endpoint("messages/batches"), json: ["requests": .array(entries)]))
    }

    private static func date(_ text: String?) -> Date? {
        guard let text else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    func findBatch(_ marker: BatchMarker) async throws(APIError) -> BatchLookup {
        let oldest = marker.notBefore.addingTimeInterval(-300)
        var candidates: [BatchJob] = []
        var after: String?
        pages: for _ in 0..<20 {
            var query = [URLQueryItem(name: "limit", value: "100")]
            if let after { query += [URLQueryItem(name: "after_id", value: after), URLQueryItem(name: "after", value: after)] }
            let page = try await get("messages/batches", query: query)
            guard case .array(let items)? = page["data"] else { break }
            for case .object(let item) in items {
                guard let created = Self.date(item["created_at"]?.stringValue) else { continue }
                if created < oldest { break pages }
                let job = try job(item)
                if job.counts.total == marker.requestCount && !marker.knownJobs.contains(job.id) { candidates.append(job) }
            }
            guard page["has_more"]?.boolValue == true, let last = page["last_id"]?.stringValue ?? items.last?.objectValue?["id"]?.stringValue else { break }
            after = last
        }
        switch candidates.count {
        case 0: return .absent
        case 1: return .found(candidates[0])
        default:
            return .ambiguous(
                "\(candidates.count) message batches of \(marker.requestCount) requests were created since then (\(candidates.map(\.id).joined(separator: ", "))) and Anthropic keeps no label to tell them apart")
        }
    }

    /// `results_url` resolved against the base URL, refused unless on its origin (the key goes there).
    private func resultsURL(_ text: String, jobID: String) throws(APIError) -> URL {
        guard let url = URL(string: text, relativeTo: configuration.baseURL)?.absoluteURL,
            url.scheme?.lowercased() == configuration.baseURL.scheme?.lowercased(), url.host?.lowercased() == configuration.baseURL.host?.lowercased(),
            url.port == configuration.baseURL.port, url.user == nil
        else {
            throw APIError(
                .providerError, "message batch \(jobID) gives a results_url off the API's origin (\(errors.preview(DisplayURL.withoutUserinfo(text), limit: 200))); the key is not sent there",
                provider: name, code: "results_url_refused")
        }
        return url
    }

    func batchResults(_ jobID: String) async throws(APIError) -> BatchResultSet {
        let batch = try await get("messages/batches/\(try checked(jobID))")
        guard batch["processing_status"]?.stringValue == "ended" else {
            throw APIError(.providerError, "message batch \(jobID) has not ended", provider: name, code: "not_ended")
        }
        guard let text = batch["results_url"]?.stringValue else { return BatchResultSet(results: []) }
        let body = try await send("GET", try resultsURL(text, jobID: jobID))
        let lines = BatchResultLines(idField: "custom_id", jobID: jobID, provider: name, text: ServerText(key: configuration.apiKey))
        return lines.read(body) { item in result(item, jobID: jobID) }
    }

    /// One line of the results file; nil without a usable `custom_id`.
    private func result(_ item: JSONObject, jobID: String) -> BatchResult? {
        guard let id = item["custom_id"]?.stringValue, BatchRequest.isValidID(id) else { return nil }
        guard case .object(let result)? = item["result"] else {
            return BatchResult(id: id, outcome: .failure(APIError(.providerError, "message batch \(jobID): the result line has no result object", provider: name, code: "batch_result_malformed")))
        }
        switch result["type"]?.stringValue {
            case "succeeded"?:
                var message: [UInt8] = []
                JSONSerializer.write(result["message"] ?? .null, to: &message)
                do throws(APIError) {
                    return BatchResult(id: id, outcome: .success(try AnthropicResponses.message(Data(message), requestedModel: "", provider: name)))
                } catch {
                    return BatchResult(id: id, outcome: .failure(error))
                }
            case "errored"?:
                let inner = result["error"]?.objectValue?["error"]?.objectValue ?? result["error"]?.objectValue
                let type = inner?["type"]?.stringValue
                let message = errors.preview(inner?["message"]?.stringValue ?? "the request failed", limit: 300)
                let retryable = ["overloaded_error", "api_error", "rate_limit_error"].contains(type ?? "")
                return BatchResult(
                    id: id, outcome: .failure(APIError(.providerError, "message batch \(jobID): \(message)", provider: name, retryable: retryable, code: type.map { errors.preview($0, limit: 60) })))
            case "canceled"?:
                return BatchResult(id: id, outcome: .failure(APIError(.cancelled, "message batch \(jobID) was cancelled before this request ran", provider: name, code: "batch_cancelled")))
            case "expired"?:
                return BatchResult(
                    id: id, outcome: .failure(APIError(.providerError, "message batch \(jobID) expired before this request ran", provider: name, retryable: true, code: "batch_expired")))
            case let other:
                return BatchResult(id: id, outcome: .failure(APIError(
                    .providerError, "message batch \(jobID): the result has an unknown type '\(errors.preview(other ?? "none", limit: 40))'", provider: name,
                    code: "batch_result_malformed")))
        }
    }
}
