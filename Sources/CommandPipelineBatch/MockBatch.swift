import CommandPipeline
import Foundation
import Synchronization

/// The mock's batch service: deterministic and offline. A job's answers are decided when it is
/// submitted (the same answers `generate` gives, request by request); the job runs for
/// `MockConfiguration.batchDelay` on the configured clock, then ends.
///
/// - A request on a model of `failingModels` fails (`unavailable`); with a fault plan each
///   request draws by its position in the job: `retryable`/`fatal` faults fail it, a `hang`
///   leaves it unanswered (it expires with the job).
/// - Cancelling a job before it ends cancels every request (no results).
///
/// Jobs live in memory, or — with `MockConfiguration.batchDirectory`, as the CLI sets it — one
/// JSON file per job in that directory, so a job outlives the process that submitted it (the
/// CLI's `submit`, `status`, `collect` are separate processes). With a directory the delay is
/// measured on the wall clock, since a monotonic clock does not survive the process.
/// In memory, the jobs are the mock adapter's (`MockAdapter.batchJobs`): this module adds the
/// batch service to the core's mock.
struct MockBatchService: Sendable {
    let configuration: MockConfiguration
    private let adapter: MockAdapter

    static let limits = BatchLimits(maxRequests: 50_000, maxBytes: 200 << 20)

    init(_ adapter: MockAdapter) {
        self.adapter = adapter
        configuration = adapter.core.configuration
    }

    struct Entry: Codable, Hashable {
        var id: String
        var text: String?
        var model: String
        var prompt: Int
        var completion: Int
        var errorKind: String?
        var errorMessage: String?
        var errorCode: String?
        var retryable: Bool?
        /// Never answered (a `hang` fault): missing from the results.
        var unanswered: Bool?
        /// The tool calls of the answer (`MockTools`), as their wire JSON; nil: none.
        var toolCalls: String?
    }

    struct Job: Codable, Hashable {
        var id: String
        var marker: String
        var requestCount: Int
        var submittedAt: Double
        var readyAt: Double
        var cancelled: Bool
        var entries: [Entry]
    }

    private var now: Double {
        if configuration.batchDirectory != nil { return Date().timeIntervalSince1970 }
        let (s, atto) = configuration.clock.now.components
        return Double(s) + Double(atto) / 1e18
    }

    private static func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) / 1e18
    }

    // MARK: store

    private func url(_ id: String) -> URL? {
        configuration.batchDirectory.map { URL(fileURLWithPath: $0).appendingPathComponent("\(id).json") }
    }

    private func load(_ id: String) throws -> Job {
        guard BatchRequest.isValidID(id) else { throw notFound(id) }
        if let url = url(id) {
            guard let data = try? Data(contentsOf: url) else { throw notFound(id) }
            do { return try JSONDecoder().decode(Job.self, from: data) } catch {
                throw APIError(.providerError, "mock: batch store file '\(url.path)' is damaged: \(error)", provider: MockProvider.name)
            }
        }
        guard let job = adapter.batchJobs.withLock({ $0[id] as? Job }) else { throw notFound(id) }
        return job
    }

    private func save(_ job: Job) throws {
        if let url = url(job.id) {
            do {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try JSONEncoder().encode(job).write(to: url, options: .atomic)
            } catch {
                throw APIError(.providerError, "mock: cannot write the batch store '\(url.path)': \(error)", provider: MockProvider.name)
            }
        } else {
            adapter.batchJobs.withLock { $0[job.id] = job }
        }
    }

    private func allJobs() throws -> [Job] {
        guard let directory = configuration.batchDirectory else { return adapter.batchJobs.withLock { $0.values.compactMap { $0 as? Job } } }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return try names.filter { $0.hasSuffix(".json") }.map { try load(String($0.dropLast(5))) }
    }

    private func notFound(_ id: String) -> APIError {
        APIError(.providerError, "mock: no batch job '\(id)'", provider: MockProvider.name, code: "not_found")
    }

    // MARK: the service

    func submit(_ requests: [BatchRequest], marker: BatchMarker) throws -> BatchJob {
        guard !requests.isEmpty, requests.count <= Self.limits.maxRequests else {
            throw APIError(.invalidCommand, "mock: a batch job takes 1 to \(Self.limits.maxRequests) requests, got \(requests.count)", provider: MockProvider.name)
        }
        var seen = Set<String>()
        var entries: [Entry] = []
        entries.reserveCapacity(requests.count)
        for (n, item) in requests.enumerated() {
            guard BatchRequest.isValidID(item.id), seen.insert(item.id).inserted else {
                throw APIError(.invalidCommand, "mock: batch request id '\(item.id)' is invalid or repeated", provider: MockProvider.name)
            }
            entries.append(entry(item, position: n))
        }
        let start = now
        var digest = SHA256()
        digest.update(marker.name)
        digest.update("\(start)")
        let job = Job(
            id: "mockbatch-" + String(digest.finalizeHex().prefix(20)), marker: marker.name, requestCount: requests.count, submittedAt: start,
            readyAt: start + Self.seconds(configuration.batchDelay), cancelled: false, entries: entries)
        try save(job)
        return describe(job)
    }

    private func entry(_ item: BatchRequest, position n: Int) -> Entry {
        let request = item.request
        func failed(_ error: APIError) -> Entry {
            Entry(
                id: item.id, model: request.model, prompt: 0, completion: 0, errorKind: error.kind.rawValue, errorMessage: error.message,
                errorCode: error.code, retryable: error.retryable)
        }
        if request.cache != nil {
            return failed(APIError(.invalidCommand, "mock: a batch request cannot use a cache", provider: MockProvider.name, code: "invalid_request"))
        }
        if configuration.failingModels.contains(request.model) {
            return failed(APIError(.providerError, "mock: model '\(request.model)' is unavailable", provider: MockProvider.name, retryable: true, code: "unavailable"))
        }
        if let faults = configuration.faults {
            switch faults.draw(UInt64(n + 1)).0 {
            case .none: break
            case .retryable:
                return failed(APIError(.providerError, "mock fault: model '\(request.model)' is temporarily unavailable", provider: MockProvider.name, retryable: true, code: "unavailable"))
            case .fatal:
                return failed(APIError(.providerError, "mock fault: request rejected for model '\(request.model)'", provider: MockProvider.name, code: "invalid_request"))
            case .hang:
                var entry = failed(APIError(.timeout, "mock fault: never answered", provider: MockProvider.name))
                entry.unanswered = true
                return entry
            }
        }
        let config = request.config
        let answer = MockCore.answer(
            model: request.model, cached: [], parts: request.parts, format: config.responseFormat, tools: config.tools, toolChoice: config.toolChoice)
        return Entry(
            id: item.id, text: answer.text, model: answer.model, prompt: answer.usage.promptTokens, completion: answer.usage.completionTokens,
            toolCalls: answer.toolCalls.isEmpty ? nil : JSONSerializer.serialize(.array(answer.toolCalls.map(\.wireValue))))
    }

    /// The tool calls an entry stored (`Entry.toolCalls`).
    static func toolCalls(_ json: String?) -> [ToolCall] {
        guard let json, let value = try? JSONParser.parse(json) else { return [] }
        return (value.arrayValue ?? []).compactMap { call -> ToolCall? in
            guard let id = call.objectValue?["id"]?.stringValue, let name = call.objectValue?["name"]?.stringValue else { return nil }
            return ToolCall(id: id, name: name, arguments: call.objectValue?["arguments"] ?? .object([:]))
        }
    }

    private func describe(_ job: Job) -> BatchJob {
        let total = job.requestCount
        if job.cancelled { return BatchJob(id: job.id, state: .cancelled, counts: BatchCounts(total: total, succeeded: 0, failed: 0)) }
        guard now >= job.readyAt else { return BatchJob(id: job.id, state: .running, counts: BatchCounts(total: total, succeeded: 0, failed: 0)) }
        let succeeded = job.entries.count { $0.text != nil }
        let expired = job.entries.contains { $0.unanswered == true }
        return BatchJob(id: job.id, state: expired ? .expired : .completed, counts: BatchCounts(total: total, succeeded: succeeded, failed: total - succeeded))
    }

    func find(_ marker: BatchMarker) throws -> BatchLookup {
        let matches = try allJobs().filter { $0.marker == marker.name }
        switch matches.count {
        case 0: return .absent
        case 1: return .found(describe(matches[0]))
        default: return .ambiguous("\(matches.count) mock jobs carry the marker '\(marker.name)'")
        }
    }

    func status(_ id: String) throws -> BatchJob { describe(try load(id)) }

    func results(_ id: String) throws -> [BatchResult] {
        let job = try load(id)
        let state = describe(job)
        guard state.state.isEnded else {
            throw APIError(.providerError, "mock: batch job '\(id)' has not ended (\(state.state.rawValue))", provider: MockProvider.name, code: "not_ended")
        }
        if job.cancelled { return [] }
        return job.entries.compactMap { entry in
            if entry.unanswered == true { return nil }
            if let text = entry.text {
                let calls = Self.toolCalls(entry.toolCalls)
                return BatchResult(
                    id: entry.id,
                    outcome: .success(GenerationResponse(
                        text: text, model: entry.model, finishReason: calls.isEmpty ? "stop" : "tool_calls",
                        usage: Usage(promptTokens: entry.prompt, completionTokens: entry.completion), toolCalls: calls)))
            }
            let kind = entry.errorKind.flatMap(APIError.Kind.init(rawValue:)) ?? .providerError
            return BatchResult(
                id: entry.id,
                outcome: .failure(APIError(kind, entry.errorMessage ?? "mock: failed", provider: MockProvider.name, retryable: entry.retryable ?? false, code: entry.errorCode)))
        }
    }

    func cancel(_ id: String) throws -> BatchJob {
        var job = try load(id)
        let state = describe(job)
        if state.state.isEnded {
            throw APIError(.providerError, "mock: batch job '\(id)' has already ended (\(state.state.rawValue))", provider: MockProvider.name, code: "already_ended")
        }
        job.cancelled = true
        try save(job)
        return describe(job)
    }
}

extension MockAdapter: BatchCapability {
    public var batchLimits: BatchLimits { MockBatchService.limits }
    public func batchSize(of request: BatchRequest) throws -> Int {
        // The mock's "line": the id and the text of the parts, as a rough byte count.
        request.request.parts.reduce(request.id.utf8.count + request.request.model.utf8.count + 16) { sum, part in
            if case .text(let text) = part { return sum + text.utf8.count + 16 }
            return sum + 64
        }
    }
    public func submitBatch(_ requests: [BatchRequest], marker: BatchMarker) async throws -> BatchJob { try MockBatchService(self).submit(requests, marker: marker) }
    public func findBatch(_ marker: BatchMarker) async throws -> BatchLookup { try MockBatchService(self).find(marker) }
    public func batchStatus(_ jobID: String) async throws -> BatchJob { try MockBatchService(self).status(jobID) }
    public func batchResults(_ jobID: String) async throws -> [BatchResult] { try MockBatchService(self).results(jobID) }
    public func cancelBatch(_ jobID: String) async throws -> BatchJob { try MockBatchService(self).cancel(jobID) }
}
