import CommandPipeline
import CommandPipelineBatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// OpenAI's Batch API: the requests go up as a JSONL file (`POST /files`, `purpose=batch`),
/// one line `{"custom_id","method":"POST","url":"/v1/chat/completions","body":…}` each, the
/// body built by `ChatRequestBuilder` exactly as `generate` builds it; `POST /batches` starts
/// the job, `GET /batches/{id}` polls it, and the output and error files hold the results
/// (in any order: matched on `custom_id`). The marker travels in the job's `metadata`, where
/// `GET /batches` shows it again.
extension OpenAIAdapter: BatchCapability, BatchOffering {
    /// 50,000 requests and 200 MB a file, one model a file.
    public var batchLimits: BatchLimits { BatchLimits(maxRequests: 50_000, maxBytes: 200_000_000, oneModelPerJob: true) }

    public func batchSize(of request: BatchRequest) throws -> Int { try core.batchLine(request).count }

    public func submitBatch(_ requests: [BatchRequest], marker: BatchMarker) async throws -> BatchJob {
        try await scrub.scrubbing { try scrub.scrub(try await core.submitBatch(requests, marker: marker)) }
    }

    public func findBatch(_ marker: BatchMarker) async throws -> BatchLookup { try await scrub.scrubbing { try scrub.scrub(try await core.findBatch(marker)) } }

    public func batchStatus(_ jobID: String) async throws -> BatchJob { try await scrub.scrubbing { try scrub.scrub(try await core.batchStatus(jobID)) } }

    public func batchResults(_ jobID: String) async throws -> [BatchResult] { try await batchResultSet(jobID).results }

    public func batchResultSet(_ jobID: String) async throws -> BatchResultSet {
        try await scrub.scrubbing { scrub.scrub(try await core.batchResults(jobID)) }
    }

    public func cancelBatch(_ jobID: String) async throws -> BatchJob { try await scrub.scrubbing { try scrub.scrub(try await core.cancelBatch(jobID)) } }
}

extension OpenAICore {
    static let batchMarkerKey = "pipeline_marker"
    /// How far back `findBatch` looks in `GET /batches` (pages of 100).
    static let batchListPages = 20

    func batchLine(_ item: BatchRequest) throws(APIError) -> [UInt8] {
        let line: JSONValue = [
            "custom_id": .string(item.id), "method": "POST", "url": "/v1/chat/completions",
            "body": try builder.body(for: item.request, stream: false),
        ]
        var bytes: [UInt8] = []
        JSONSerializer.write(line, to: &bytes)
        bytes.append(0x0a)
        return bytes
    }

    private func call(_ method: String, _ path: String, json: JSONValue? = nil, query: [URLQueryItem] = []) async throws(APIError) -> Data {
        try await exchange.send(exchange.request(endpoint(path).appendingQuery(query), method: method, json: json)).body
    }

    private func object(_ data: Data, _ what: String) throws(APIError) -> JSONObject {
        guard case .object(let object) = try OpenAIResponses.parse(data, provider: OpenAIProvider.name, text: serverText) else {
            throw APIError(.providerError, "\(what): the answer is not a JSON object: \(serverText.preview(data))", provider: OpenAIProvider.name)
        }
        return object
    }

    /// An id the server gave, checked before it goes into a URL path.
    private func id(_ value: JSONValue?, _ what: String) throws(APIError) -> String {
        guard let id = value?.stringValue, Self.isSafeID(id) else {
            throw APIError(.providerError, "\(what): the server gave no usable id", provider: OpenAIProvider.name)
        }
        return id
    }

    /// Letters, digits, `-`, `_`, `.` (not only dots), at most 256 characters: safe as one path segment.
    static func isSafeID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 256 && id.contains { $0 != "." }
            && id.utf8.allSatisfy { b in (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x5f || b == 0x2d || b == 0x2e }
    }

    func submitBatch(_ requests: [BatchRequest], marker: BatchMarker) async throws(APIError) -> BatchJob {
        let lines: PrivateTemporaryFile
        do {
            lines = try await PrivateTemporaryFile.write(label: "batch-input") { file in
                for item in requests { try file.append(try batchLine(item)) }
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(.internal, "cannot write the batch input file: \(error)", provider: OpenAIProvider.name)
        }
        defer { try? FileManager.default.removeItem(at: lines.url) }
        let multipart: MultipartBody
        do {
            let opened = try OpenedFile.open(lines.url.path, maximumBytes: Int.max).get()
            multipart = MultipartBody(
                fields: [("purpose", "batch")], fileField: "file", file: opened, filename: "\(marker.name).jsonl", mimeType: "application/jsonl")
        } catch {
            throw APIError(.internal, "cannot prepare the batch input upload: \(error)", provider: OpenAIProvider.name)
        }
        let uploaded = try await exchange.upload(exchange.request(endpoint("files")), multipart: multipart)
        let fileID = try id(try object(uploaded.body, "uploading the batch input")["id"], "uploading the batch input")
        let created = try await call("POST", "batches", json: [
            "input_file_id": .string(fileID), "endpoint": "/v1/chat/completions", "completion_window": "24h",
            "metadata": [Self.batchMarkerKey: .string(marker.name)],
        ])
        return try job(try object(created, "creating the batch"))
    }

    /// A batch object as a `BatchJob`; counts are range-checked by `BatchCounts`.
    private func job(_ object: JSONObject) throws(APIError) -> BatchJob {
        let jobID = try id(object["id"], "the batch")
        let state: BatchJob.State
        switch object["status"]?.stringValue {
        case "validating"?: state = .pending
        case "in_progress"?, "finalizing"?: state = .running
        case "completed"?: state = .completed
        case "failed"?: state = .failed
        case "expired"?: state = .expired
        case "cancelling"?: state = .cancelling
        case "cancelled"?: state = .cancelled
        case let other:
            throw APIError(.providerError, "batch \(jobID) has an unknown status '\(serverText.preview(other ?? "none", limit: 40))'", provider: OpenAIProvider.name)
        }
        let counts = object["request_counts"]?.objectValue
        let count = { (key: String) in OpenAIResponses.tokens(counts?[key]) ?? 0 }
        var message: String?
        if case .array(let list)? = object["errors"]?.objectValue?["data"], let first = list.first?.objectValue {
            message = serverText.preview(first["message"]?.stringValue ?? first["code"]?.stringValue ?? "unknown error", limit: 200)
        }
        return BatchJob(
            id: jobID, state: state, counts: BatchCounts(total: count("total"), succeeded: count("completed"), failed: count("failed")), message: message)
    }

    func findBatch(_ marker: BatchMarker) async throws(APIError) -> BatchLookup {
        var matches: [BatchJob] = []
        var after: String?
        let oldest = marker.notBefore.timeIntervalSince1970 - 300
        pages: for _ in 0..<Self.batchListPages {
            var query = [URLQueryItem(name: "limit", value: "100")]
            if let after { query.append(URLQueryItem(name: "after", value: after)) }
            let page = try object(try await call("GET", "batches", query: query), "listing batches")
            guard case .array(let items)? = page["data"] else { break }
            for case .object(let item) in items {
                if item["metadata"]?.objectValue?[Self.batchMarkerKey]?.stringValue == marker.name { matches.append(try job(item)) }
                if let created = item["created_at"]?.doubleValue, created < oldest { break pages }
            }
            guard page["has_more"]?.boolValue == true, let last = items.last?.objectValue?["id"]?.stringValue, Self.isSafeID(last) else { break }
            after = last
        }
        switch matches.count {
        case 0: return .absent
        case 1: return .found(matches[0])
        default: return .ambiguous("\(matches.count) batches carry the marker \(marker.name): \(matches.map(\.id).joined(separator: ", "))")
        }
    }

    func batchStatus(_ jobID: String) async throws(APIError) -> BatchJob {
        guard Self.isSafeID(jobID) else { throw APIError(.invalidCommand, "'\(jobID)' is not a batch id", provider: OpenAIProvider.name) }
        return try job(try object(try await call("GET", "batches/\(jobID)"), "reading batch \(jobID)"))
    }

    func cancelBatch(_ jobID: String) async throws(APIError) -> BatchJob {
        guard Self.isSafeID(jobID) else { throw APIError(.invalidCommand, "'\(jobID)' is not a batch id", provider: OpenAIProvider.name) }
        return try job(try object(try await call("POST", "batches/\(jobID)/cancel"), "cancelling batch \(jobID)"))
    }

    func batchResults(_ jobID: String) async throws(APIError) -> BatchResultSet {
        guard Self.isSafeID(jobID) else { throw APIError(.invalidCommand, "'\(jobID)' is not a batch id", provider: OpenAIProvider.name) }
        let batch = try object(try await call("GET", "batches/\(jobID)"), "reading batch \(jobID)")
        var set = BatchResultSet(results: [])
        for key in ["output_file_id", "error_file_id"] {
            guard let value = batch[key], value != .null else { continue }
            let fileID = try id(value, "batch \(jobID)'s \(key)")
            let content = try await call("GET", "files/\(fileID)/content")
            let lines = BatchResultLines(idField: "custom_id", jobID: key == "output_file_id" ? jobID : "\(jobID) (error file)", provider: OpenAIProvider.name, text: serverText)
            let read = lines.read(content) { item in result(item, jobID: jobID) }
            set.results += read.results
            set.unreadable += read.unreadable
        }
        return set
    }

    /// One line of an output or error file; nil for a line without a usable `custom_id`.
    private func result(_ item: JSONObject, jobID: String) -> BatchResult? {
        guard let customID = item["custom_id"]?.stringValue, BatchRequest.isValidID(customID) else { return nil }
        if case .object(let error)? = item["error"] {
            let code = error["code"]?.stringValue
            let message = serverText.preview(error["message"]?.stringValue ?? code ?? "the request failed", limit: 300)
            let expired = code == "batch_expired"
            return BatchResult(id: customID, outcome: .failure(APIError(
                .providerError, "batch \(jobID): \(message)", provider: OpenAIProvider.name, retryable: expired, code: code.map { serverText.preview($0, limit: 60) })))
        }
        guard case .object(let response)? = item["response"] else {
            return BatchResult(id: customID, outcome: .failure(APIError(.providerError, "batch \(jobID): the result has neither a response nor an error", provider: OpenAIProvider.name)))
        }
        let status = response["status_code"]?.intValue ?? 0
        var body: [UInt8] = []
        JSONSerializer.write(response["body"] ?? .null, to: &body)
        guard (200..<300).contains(status) else {
            return BatchResult(id: customID, outcome: .failure(errors.error(status: status, headers: [:], body: Data(body), endpoint: "batch \(jobID)")))
        }
        do throws(APIError) {
            return BatchResult(id: customID, outcome: .success(try OpenAIResponses.completion(Data(body), requestedModel: "", provider: OpenAIProvider.name, text: serverText)))
        } catch {
            return BatchResult(id: customID, outcome: .failure(error))
        }
    }
}

extension ServerText {
    /// Every result scrubbed: answers and errors, and the notes on unreadable lines.
    func scrub(_ set: BatchResultSet) -> BatchResultSet {
        BatchResultSet(
            results: set.results.map { result in
                switch result.outcome {
                case .success(let response): BatchResult(id: result.id, outcome: .success(scrub(response)))
                case .failure(let error): BatchResult(id: result.id, outcome: .failure(scrub(error) as? APIError ?? error))
                }
            },
            unreadable: set.unreadable.map(redact))
    }

    /// A job as a provider described it, for the engine: its message redacted, and refused when
    /// its id carries the key (the id goes into the job file and onto stdout).
    func scrub(_ job: BatchJob) throws(APIError) -> BatchJob {
        guard redact(job.id) == job.id else {
            throw APIError(.providerError, "the server answered with a batch id that contains the API key; it is not recorded", code: "key_in_batch_id")
        }
        var job = job
        job.message = job.message.map(redact)
        return job
    }

    func scrub(_ lookup: BatchLookup) throws(APIError) -> BatchLookup {
        switch lookup {
        case .found(let job): return .found(try scrub(job))
        case .absent: return .absent
        case .ambiguous(let why): return .ambiguous(redact(why))
        }
    }
}
