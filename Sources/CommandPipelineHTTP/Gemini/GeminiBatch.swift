import CommandPipeline
import CommandPipelineBatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Gemini's batch mode: `POST models/{model}:batchGenerateContent` with
/// `{"batch":{"displayName","inputConfig":{"requests":{"requests":[{"request","metadata":{"key"}}]}}}}`
/// — each request the body `GeminiRequestBuilder` builds for `generateContent` — or, above
/// `GeminiConfiguration.batchInlineBytes`, `{"inputConfig":{"fileName":"files/…"}}` naming an
/// uploaded JSONL of `{"key","request"}` lines. The answer is an operation `batches/…`;
/// `GET batches/{id}` reads `metadata.state` (`BATCH_STATE_*`, or `JOB_STATE_*`) and the
/// results in `metadata.output` (or `response`, when done): `inlinedResponses.inlinedResponses[]`
/// or a `responsesFile` read through `files/{id}:download?alt=media`. The marker is the
/// display name, which `GET batches` lists.
extension GeminiAdapter: BatchCapability, BatchOffering {
    /// One model a job; 2 GB of input (inline up to `batchInlineBytes`, else a file).
    public var batchLimits: BatchLimits { BatchLimits(maxRequests: GeminiConfiguration.batchMaxRequests, maxBytes: 2_000_000_000, oneModelPerJob: true) }

    public func batchSize(of request: BatchRequest) throws -> Int {
        var bytes: [UInt8] = []
        JSONSerializer.write(try core.batchEntry(request), to: &bytes)
        return bytes.count + 1
    }

    public func submitBatch(_ requests: [BatchRequest], marker: BatchMarker) async throws -> BatchJob {
        try await batchScrub.scrubbing { try batchScrub.scrub(try await core.submitBatch(requests, marker: marker)) }
    }

    public func findBatch(_ marker: BatchMarker) async throws -> BatchLookup { try await batchScrub.scrubbing { try batchScrub.scrub(try await core.findBatch(marker)) } }

    public func batchStatus(_ jobID: String) async throws -> BatchJob {
        try await batchScrub.scrubbing { try batchScrub.scrub(try core.job(try await core.operation(jobID))) }
    }

    public func batchResults(_ jobID: String) async throws -> [BatchResult] { try await batchResultSet(jobID).results }

    public func batchResultSet(_ jobID: String) async throws -> BatchResultSet {
        let scrub = batchScrub
        return try await scrub.scrubbing { scrub.scrub(try await core.batchResults(jobID)) }
    }

    public func cancelBatch(_ jobID: String) async throws -> BatchJob {
        try await batchScrub.scrubbing { try batchScrub.scrub(try await core.cancelBatch(jobID)) }
    }

    private var batchScrub: ServerText { ServerText(key: core.configuration.apiKey) }
}

extension GeminiCore {
    private var name: String { GeminiProvider.name }

    /// `{"request": <generateContent body>, "metadata": {"key": id}}`.
    func batchEntry(_ item: BatchRequest) throws(APIError) -> JSONValue {
        if item.request.cache != nil {
            throw APIError(.invalidCommand, "a batch request cannot use a cache created first", provider: name)
        }
        return ["request": try builder.body(for: item.request), "metadata": ["key": .string(item.id)]]
    }

    /// `batches/{id}`, checked before it goes into a URL path.
    private func path(_ jobID: String) throws(APIError) -> String {
        let id = jobID.hasPrefix("batches/") ? String(jobID.dropFirst("batches/".count)) : jobID
        guard OpenAICore.isSafeID(id) else { throw APIError(.invalidCommand, "'\(jobID)' is not a batch name", provider: name) }
        return "batches/" + id
    }

    private func object(_ response: HTTPClient.Response, _ what: String) throws(APIError) -> JSONObject {
        guard let object = try GeminiResponses.parse(response.body, provider: name, what: what).objectValue else {
            throw APIError(.providerError, "\(what) is not a JSON object", provider: name)
        }
        return object
    }

    func operation(_ jobID: String) async throws(APIError) -> JSONObject {
        try object(try await exchange.send(exchange.request(configuration.url(try path(jobID)), method: "GET")), "the batch operation")
    }

    func submitBatch(_ requests: [BatchRequest], marker: BatchMarker) async throws(APIError) -> BatchJob {
        guard let model = requests.first?.request.model, requests.allSatisfy({ $0.request.model == model }) else {
            throw APIError(.invalidCommand, "a Gemini batch job runs one model: every request must name the same model", provider: name)
        }
        var entries: [JSONValue] = []
        var bytes = 0
        for item in requests {
            let entry = try batchEntry(item)
            var encoded: [UInt8] = []
            JSONSerializer.write(entry, to: &encoded)
            bytes += encoded.count + 1
            entries.append(entry)
        }
        let input: JSONValue
        if bytes <= configuration.batchInlineBytes {
            input = ["requests": ["requests": .array(entries)]]
        } else {
            input = ["fileName": .string(try await uploadBatchInput(entries, marker: marker))]
        }
        let body: JSONValue = ["batch": ["displayName": .string(marker.name), "inputConfig": input]]
        let url = configuration.url(GeminiConfiguration.modelPath(model) + ":batchGenerateContent")
        return try job(try object(try await exchange.send(exchange.request(url, json: body)), "the created batch"))
    }

    /// The JSONL input (`{"key","request"}` lines) uploaded through the Files API; its `files/…` name.
    private func uploadBatchInput(_ entries: [JSONValue], marker: BatchMarker) async throws(APIError) -> String {
        let file: PrivateTemporaryFile
        do {
            file = try await PrivateTemporaryFile.write(label: "\(marker.name).jsonl") { out in
                for entry in entries {
                    let line: JSONValue = ["key": entry.objectValue?["metadata"]?.objectValue?["key"] ?? .null, "request": entry.objectValue?["request"] ?? .null]
                    var bytes: [UInt8] = []
                    JSONSerializer.write(line, to: &bytes)
                    bytes.append(0x0a)
                    try out.append(bytes)
                }
            }
        } catch {
            throw APIError(.internal, "cannot write the batch input file: \(error)", provider: name)
        }
        defer { try? FileManager.default.removeItem(at: file.url) }
        let reference = try await upload(FileUpload(path: file.url.path, mimeType: "application/jsonl"))
        guard let range = reference.uri.range(of: "files/") else {
            throw APIError(.providerError, "the uploaded batch input has no files/… name", provider: name)
        }
        return String(reference.uri[range.lowerBound...])
    }

    /// An operation as a `BatchJob`: state from `metadata.state`, counts from `metadata.batchStats`
    /// (int64 strings, range-checked by `BatchCounts`).
    func job(_ operation: JSONObject) throws(APIError) -> BatchJob {
        guard let operationName = operation["name"]?.stringValue, operationName.hasPrefix("batches/"),
            OpenAICore.isSafeID(String(operationName.dropFirst("batches/".count)))
        else {
            throw APIError(.providerError, "a batch operation without a usable name", provider: name)
        }
        let metadata = operation["metadata"]?.objectValue
        let raw = metadata?["state"]?.stringValue ?? "BATCH_STATE_PENDING"
        let state: BatchJob.State
        switch raw.replacingOccurrences(of: "JOB_STATE_", with: "BATCH_STATE_") {
        case "BATCH_STATE_PENDING", "BATCH_STATE_QUEUED", "BATCH_STATE_UNSPECIFIED": state = .pending
        case "BATCH_STATE_RUNNING": state = .running
        case "BATCH_STATE_SUCCEEDED": state = .completed
        case "BATCH_STATE_FAILED": state = .failed
        case "BATCH_STATE_CANCELLING": state = .cancelling
        case "BATCH_STATE_CANCELLED": state = .cancelled
        case "BATCH_STATE_EXPIRED": state = .expired
        default:
            throw APIError(.providerError, "batch \(operationName) has an unknown state '\(ServerText(key: configuration.apiKey).preview(raw, limit: 40))'", provider: name)
        }
        let stats = metadata?["batchStats"]?.objectValue
        let count = { (key: String) in GeminiResponses.integer(stats?[key]).map { max(0, min($0, Int(Int32.max))) } ?? 0 }
        var message: String?
        if let error = operation["error"]?.objectValue {
            message = ServerText(key: configuration.apiKey).preview(error["message"]?.stringValue ?? "unknown error", limit: 200)
        }
        return BatchJob(
            id: operationName, state: state,
            counts: BatchCounts(total: count("requestCount"), succeeded: count("successfulRequestCount"), failed: count("failedRequestCount")),
            message: message)
    }

    func findBatch(_ marker: BatchMarker) async throws(APIError) -> BatchLookup {
        var matches: [BatchJob] = []
        var pageToken: String?
        for _ in 0..<20 {
            var query = "pageSize=100"
            if let pageToken, let escaped = pageToken.addingPercentEncoding(withAllowedCharacters: .alphanumerics) { query += "&pageToken=\(escaped)" }
            let page = try object(try await exchange.send(exchange.request(configuration.url("batches", query: query), method: "GET")), "the batch list")
            for case .object(let item) in page["operations"]?.arrayValue ?? [] where item["metadata"]?.objectValue?["displayName"]?.stringValue == marker.name {
                matches.append(try job(item))
            }
            guard let next = page["nextPageToken"]?.stringValue, !next.isEmpty else { break }
            pageToken = next
        }
        switch matches.count {
        case 0: return .absent
        case 1: return .found(matches[0])
        default: return .ambiguous("\(matches.count) batches are named \(marker.name): \(matches.map(\.id).joined(separator: ", "))")
        }
    }

    func cancelBatch(_ jobID: String) async throws(APIError) -> BatchJob {
        _ = try await exchange.send(exchange.request(configuration.url(try path(jobID) + ":cancel"), json: [:]))
        return try job(try await operation(jobID))
    }

    func batchResults(_ jobID: String) async throws(APIError) -> BatchResultSet {
        let operation = try await operation(jobID)
        let state = try job(operation)
        guard state.state.isEnded else {
            throw APIError(.providerError, "batch \(state.id) has not ended", provider: name, code: "not_ended")
        }
        let output = operation["metadata"]?.objectValue?["output"]?.objectValue ?? operation["response"]?.objectValue
        var set = BatchResultSet(results: [])
        if let inlined = output?["inlinedResponses"]?.objectValue?["inlinedResponses"]?.arrayValue {
            for (n, entry) in inlined.enumerated() {
                guard case .object(let item) = entry, let result = result(key: item["metadata"]?.objectValue?["key"]?.stringValue, item, jobID: state.id) else {
                    set.unreadable.append("inlined response \(n + 1): no usable metadata.key")
                    continue
                }
                set.results.append(result)
            }
        }
        if let file = output?["responsesFile"]?.stringValue {
            guard file.hasPrefix("files/"), OpenAICore.isSafeID(String(file.dropFirst("files/".count))) else {
                throw APIError(.providerError, "batch \(state.id) names an unusable responses file", provider: name)
            }
            let body = try await exchange.send(exchange.request(configuration.url(file + ":download", query: "alt=media"), method: "GET")).body
            let lines = BatchResultLines(idField: "key", jobID: state.id, provider: name, text: ServerText(key: configuration.apiKey))
            let read = lines.read(body) { item in result(key: item["key"]?.stringValue, item, jobID: state.id) }
            set.results += read.results
            set.unreadable += read.unreadable
        }
        return set
    }

    /// One answer (`response` or `error`) under its key; nil without a usable key.
    private func result(key: String?, _ item: JSONObject, jobID: String) -> BatchResult? {
        guard let key, BatchRequest.isValidID(key) else { return nil }
        if let error = item["error"]?.objectValue {
            let message = ServerText(key: configuration.apiKey).preview(error["message"]?.stringValue ?? "the request failed", limit: 300)
            let status = error["status"]?.stringValue
            let retryable = ["RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"].contains(status ?? "")
            return BatchResult(id: key, outcome: .failure(APIError(.providerError, "batch \(jobID): \(message)", provider: name, retryable: retryable, code: status)))
        }
        guard let response = item["response"] else {
            return BatchResult(id: key, outcome: .failure(APIError(.providerError, "batch \(jobID): the result has neither a response nor an error", provider: name)))
        }
        var assembler = GeminiResponses.Assembler(requestedModel: "", provider: name, serverText: ServerText(key: configuration.apiKey))
        do throws(APIError) {
            _ = try assembler.take(response)
            return BatchResult(id: key, outcome: .success(try assembler.response(endpoint: "batch \(jobID)")))
        } catch {
            return BatchResult(id: key, outcome: .failure(error))
        }
    }
}
