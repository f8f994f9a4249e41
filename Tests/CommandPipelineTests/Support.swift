import CommandPipeline
import Foundation
@_exported import CommandPipelineTesting
@_exported import PipelineTestSupport
import Synchronization

/// Counts calls and the most in flight at once; latency (per model) runs on a `ManualClock`.
final class Recorder: Sendable {
    struct Counts {
        var inFlight = 0
        var maxInFlight = 0
        var generateCalls = 0
        var uploads: [String] = []
        var cachesCreated = 0
        var cacheLookups = 0
        var requests: [GenerationRequest] = []
    }
    let counts = Mutex(Counts())
    var snapshot: Counts { counts.withLock { $0 } }

    func enter() { counts.withLock { $0.inFlight += 1; $0.maxInFlight = max($0.maxInFlight, $0.inFlight) } }
    func leave() { counts.withLock { $0.inFlight -= 1 } }
}

/// A generation-only provider for tests: echoes like the mock, with per-model latency on a manual clock.
struct RecordingProvider: GenerationCapability {
    let clock: ManualClock
    let recorder = Recorder()
    var latency: [String: Duration] = [:]
    var failing: Set<String> = []
    var providerName: String { "recording" }

    func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        recorder.enter()
        defer { recorder.leave() }
        recorder.counts.withLock { $0.generateCalls += 1; $0.requests.append(request) }
        if let delay = latency[request.model] { try await clock.sleep(for: delay) }
        if failing.contains(request.model) {
            throw APIError(.providerError, "model \(request.model) refused", provider: providerName, retryable: false, code: "refused")
        }
        let last = request.parts.reversed().compactMap { if case .text(let t) = $0 { t } else { nil } }.first ?? ""
        return GenerationResponse(text: "echo: \(last)", model: request.model, usage: Usage(promptTokens: 10, completionTokens: 5))
    }
}

/// Adds uploads (with latency on the manual clock) to a recording provider.
struct UploadingProvider: GenerationCapability, UploadsCapability {
    let base: RecordingProvider
    var uploadLatency: Duration = .zero
    var providerName: String { "uploading" }
    var recorder: Recorder { base.recorder }

    func generate(_ request: GenerationRequest) async throws -> GenerationResponse { try await base.generate(request) }

    func upload(_ file: FileUpload) async throws -> FileReference {
        recorder.enter()
        defer { recorder.leave() }
        recorder.counts.withLock { $0.uploads.append(file.path) }
        if uploadLatency > .zero { try await base.clock.sleep(for: uploadLatency) }
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw APIError(.uploadFailed, "no such file '\(file.path)'", provider: providerName)
        }
        return FileReference(uri: "test://\(URL(fileURLWithPath: file.path).lastPathComponent)", mimeType: file.mimeType)
    }
}

/// A caching provider whose cache creation takes time on the manual clock.
struct CachingProvider: GenerationCapability, CachingCapability {
    let base: RecordingProvider
    var createLatency: Duration = .zero
    var failCreation = false
    var providerName: String { "caching" }
    var recorder: Recorder { base.recorder }

    func generate(_ request: GenerationRequest) async throws -> GenerationResponse { try await base.generate(request) }

    func createCache(_ context: GenerationRequest, key: String, ttlSeconds: Int) async throws -> CacheReference {
        if createLatency > .zero { try await base.clock.sleep(for: createLatency) }
        if failCreation { throw APIError(.providerError, "context too small to cache", provider: providerName) }
        let n = recorder.counts.withLock { c -> Int in c.cachesCreated += 1; return c.cachesCreated }
        return CacheReference(id: "cache-\(n)", key: key, model: context.model)
    }

    func cache(forKey key: String) async throws -> CacheReference? {
        recorder.counts.withLock { $0.cacheLookups += 1 }
        return nil
    }
}

func command(_ id: String = "c", model: String = "m", prompts: [String] = ["hello"], shared: [APIPart] = [],
             fallback: APICall? = nil, cache: CachePlan? = nil, estimate: TokenEstimate? = nil,
             uploadTasks: [UploadTask] = []) -> PlannedCommand {
    PlannedCommand(
        id: id,
        plan: ExecutionPlan(
            calls: prompts.map { APICall(model: model, parts: [.text($0)]) }, sharedParts: shared, fallbackCall: fallback,
            uploadTasks: uploadTasks, cache: cache),
        tokenEstimate: estimate)
}

extension Result {
    var success: Success? { if case .success(let s) = self { s } else { nil } }
    var failure: Failure? { if case .failure(let f) = self { f } else { nil } }
}
