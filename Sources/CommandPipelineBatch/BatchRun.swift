import CommandPipeline
import Foundation

/// A batch run recorded in a job file, driven from Swift as `pipeline batch` drives it:
/// submit commands to the provider's batch service (about half the price, within a day),
/// follow the jobs, collect one result line per command in `run`'s schema, send the failed
/// requests again, cancel. Every step may run in another process than the last: everything it
/// needs is in the job file and its manifest, written atomically, and a step killed at any
/// moment is safe to run again (Design/batch.md, "Restart rules").
///
/// ```swift
/// let provider = OpenAIProvider.make(OpenAIConfiguration(capabilities: [.generation, .batch]))
/// let run = try BatchRun(jobFile: "papers.job.json", provider: provider)
/// let submitted = try await run.submit(BatchInput(Array(commandsJSONL.utf8)))
/// _ = try await run.status(waiting: BatchWaiting(pollInterval: .seconds(60)))
/// let collected = try await run.collect { record in results.append(record); return true }
/// if collected.failed > 0 { _ = try await run.retry() }   // then wait and collect again
/// ```
public struct BatchRun: Sendable {
    /// The job file (its manifest is beside it: `BatchJobFile.manifestPath(path)`).
    public let path: String
    public let providerName: String
    let batch: any BatchCapability
    /// Tests: called after a job was sent and before it is recorded, with how many this call
    /// has sent (the CLI's tests kill the process there).
    package var afterSending: (@Sendable (Int) -> Void)?

    /// A run over `provider`'s batch service; throws `.invalid` when it has none.
    public init(jobFile path: String, provider: any GenerationCapability) throws(BatchError) {
        guard let batch = provider.batch else {
            throw BatchError(
                .invalid, "provider '\(provider.providerName)' has no batch service here (capability 'batch' is missing)",
                hint: provider.providerName == "openai" ? "declare it with --capabilities generation,batch for a compatible server that has /v1/batches" : nil)
        }
        self.path = path
        self.providerName = provider.providerName
        self.batch = batch
    }

    /// The job file at `path`, or nil when there is none yet.
    public static func jobFile(at path: String) throws(BatchError) -> BatchJobFile? {
        FileManager.default.fileExists(atPath: path) ? try BatchJobFile.load(path) : nil
    }

    // MARK: submit

    /// What `submit` sent.
    public struct Submission: Sendable {
        public var commands: Int
        public var requests: Int
        /// Commands refused before sending (invalid, or not batchable): failed records in `collect`.
        public var rejected: Int
        /// The provider's id of each job, nil for a job never sent (withdrawn).
        public var jobs: [String?]
    }

    /// Validates every command (the same errors as `run`), builds the requests as `run` does,
    /// splits them into jobs within the provider's limits (and `maxRequestsPerJob`) and submits
    /// them, recording each in the job file before and after it is sent. Run again with the same
    /// input after a failure or a kill: it continues and never submits a job twice. `endpoint`
    /// is recorded in a new job file (by default: the provider's name only).
    public func submit(
        _ input: BatchInput, endpoint: BatchJobFile.Endpoint? = nil, maxRequestsPerJob: Int? = nil, log: (String) -> Void = { _ in }
    ) async throws(BatchError) -> Submission {
        let plan = BatchPlan.make(input: input, batch: batch, providerName: providerName, maxRequestsPerJob: maxRequestsPerJob)
        var job: BatchJobFile
        if let existing = try Self.jobFile(at: path) {
            job = existing
            guard plan.inputSHA256 == job.inputSHA256 else {
                throw BatchError(.invalid, "the input is not the one job file '\(path)' was made from (its SHA-256 differs); give the same commands, or a new --job file")
            }
            let planned = BatchPlan.jobChunks(plan.chunks, nonce: job.nonce, first: 0, retry: false)
            let sameChunks = planned.count == job.submitChunks
                && zip(planned, job.chunks).allSatisfy { $0.marker == $1.marker && $0.model == $1.model && $0.requests == $1.requests }
            guard sameChunks else {
                throw BatchError(.invalid, "job file '\(path)' splits this input into other jobs than these options do; re-run submit with the options it was made with (--max-requests-per-job)")
            }
        } else {
            let manifest = plan.manifest()
            var digest = SHA256()
            digest.update(manifest)
            let nonce = String(UUID().uuidString.lowercased().prefix(8))
            job = BatchJobFile(
                endpoint: endpoint ?? BatchJobFile.Endpoint(provider: providerName), nonce: nonce, inputSHA256: plan.inputSHA256,
                commands: plan.entries.count, requests: plan.requestCount, manifestSHA256: digest.finalizeHex(), cancelled: false,
                chunks: BatchPlan.jobChunks(plan.chunks, nonce: nonce, first: 0, retry: false))
            // The manifest first: a job file always has its manifest.
            if let problem = AtomicFile.write(manifest, to: BatchJobFile.manifestPath(path)) { throw BatchError.cannotWrite(problem) }
            try job.save(path)
        }
        var requests: [Int: [BatchRequest]] = [:]
        for n in plan.chunks.indices { requests[n] = plan.chunks[n].requests }
        try await send(&job, requests: requests.merging(try pendingRetries(job)) { a, _ in a }, again: "submit", log: log)
        return Submission(
            commands: job.commands, requests: job.requests, rejected: plan.entries.count { $0.rejectedLine != nil },
            jobs: job.chunks.prefix(job.submitChunks).map(\.jobID))
    }

    /// The requests of a retry's chunks that are not sent yet, rebuilt from the manifest.
    func pendingRetries(_ job: BatchJobFile) throws(BatchError) -> [Int: [BatchRequest]] {
        let pending = job.chunks.indices.filter { job.chunks[$0].requestIDs != nil && job.chunks[$0].state != .submitted && job.chunks[$0].state != .withdrawn }
        guard !pending.isEmpty else { return [:] }
        let ids = pending.flatMap { job.chunks[$0].requestIDs ?? [] }
        let built = try BatchManifest.load(path, job: job).requests(Set(ids))
        var requests: [Int: [BatchRequest]] = [:]
        for n in pending { requests[n] = (job.chunks[n].requestIDs ?? []).compactMap { built[$0] } }
        return requests
    }

    /// Sends every chunk not yet submitted, in order, by the restart rules: `submitting` and
    /// saved before it is sent, `submitted` with its job id and saved after; a chunk found
    /// `submitting` (a kill in between) is looked up by its marker first, never sent twice.
    func send(_ job: inout BatchJobFile, requests: [Int: [BatchRequest]], again: String, log: (String) -> Void) async throws(BatchError) {
        var sentHere = 0
        for n in job.chunks.indices {
            let chunk = job.chunks[n]
            if chunk.state == .submitted || chunk.state == .withdrawn { continue }
            if job.cancelled {
                job.chunks[n].state = .withdrawn
                try job.save(path)
                continue
            }
            let label = "job \(n + 1) of \(job.chunks.count) (marker \(chunk.marker))"
            guard let items = requests[n], items.count == chunk.requests else {
                throw BatchError(.invalid, "the requests of \(label) cannot be rebuilt: the job file does not match its input")
            }
            if chunk.state == .submitting {
                // Killed between sending and recording: the provider may hold the job already.
                let marker = BatchMarker(
                    name: chunk.marker, requestCount: chunk.requests, notBefore: Date(timeIntervalSince1970: chunk.since ?? 0), knownJobs: job.knownJobs)
                let lookup: BatchLookup
                do { lookup = try await batch.findBatch(marker) } catch {
                    throw BatchError(.notFinished, "cannot check whether \(label) reached the provider: \(BatchError.describe(error)); run \(again) again later")
                }
                switch lookup {
                case .found(let found):
                    job.chunks[n].state = .submitted
                    job.chunks[n].jobID = found.id
                    try job.save(path)
                    log("job \(n + 1)/\(job.chunks.count): already submitted as \(found.id) (found by its marker \(chunk.marker))")
                    continue
                case .ambiguous(let why):
                    throw BatchError(
                        .notFinished,
                        "\(label) may have reached the provider, which cannot tell: \(why); nothing was submitted again. Check the provider's batch list, then set this chunk's \"state\" to \"planned\" in '\(path)' to submit it, or to \"submitted\" with its \"job_id\"")
                case .absent:
                    break
                }
            }
            let since = Date().timeIntervalSince1970.rounded(.down)
            job.chunks[n].state = .submitting
            job.chunks[n].since = since
            try job.save(path)
            let submitted: BatchJob
            do {
                submitted = try await batch.submitBatch(items, marker: BatchMarker(name: chunk.marker, requestCount: items.count, notBefore: Date(timeIntervalSince1970: since)))
            } catch {
                let prefix = "submitting job \(n + 1) of \(job.chunks.count) failed: \(BatchError.describe(error))"
                guard Self.nothingSent(error) else {
                    // A timeout, a lost connection, a 5xx, 408/409/429, an answer not understood: the
                    // provider may have made the job. The chunk stays `submitting` (saved before
                    // sending), so the next run looks for it by its marker before sending anything.
                    throw BatchError(.provider, "\(prefix); the job may have reached the provider: run \(again) again, which looks for it by its marker before sending it again")
                }
                job.chunks[n].state = .planned
                do { try job.save(path) } catch { throw BatchError(.write, "\(prefix); and the job file could not be written: \(error.message)") }
                throw BatchError(.provider, "\(prefix); the jobs before it are recorded, run \(again) again to continue")
            }
            sentHere += 1
            afterSending?(sentHere)
            job.chunks[n].state = .submitted
            job.chunks[n].jobID = submitted.id
            try job.save(path)
            log("job \(n + 1)/\(job.chunks.count): submitted as \(submitted.id) (\(items.count) requests)")
        }
    }

    /// Whether a failed submit cannot have made a job, so its chunk may be sent again without a
    /// lookup: refused before anything was sent (the endpoint, the key, the command, TLS, no
    /// connection) or answered with a 4xx other than 408, 409 and 429. Anything else is in doubt.
    static func nothingSent(_ error: any Error) -> Bool {
        guard let error = error as? APIError else { return false }
        if error.kind == .invalidCommand || error.kind == .capabilityMissing { return true }
        if let code = error.code, ["tls_failed", "connection_failed", "out_of_descriptors"].contains(code) { return true }
        // The providers' answers read "HTTP 400 from …" (`*ErrorMapping`).
        let text = error.message.utf8
        guard text.starts(with: "HTTP ".utf8) else { return false }
        let digits = text.dropFirst(5).prefix(3)
        guard digits.count == 3, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let status = Int(String(decoding: digits, as: UTF8.self)) else { return false }
        return (400..<500).contains(status) && ![408, 409, 429].contains(status)
    }

    // MARK: cancel

    /// What `cancel` did to each submitted job.
    public struct Cancellation: Sendable {
        public struct Job: Sendable {
            public var id: String
            /// The job's state after the request, nil when it failed (`error`).
            public var state: BatchJob.State?
            public var error: String?
        }
        public var jobs: [Job]
        /// Jobs that may or may not have reached the provider (a submit killed while sending).
        public var inDoubt: Int
    }

    /// Marks the job file cancelled and the chunks not sent `withdrawn` first (a later submit
    /// sends nothing), then cancels every submitted job that has not ended.
    public func cancel() async throws(BatchError) -> Cancellation {
        var job = try BatchJobFile.load(path)
        job.cancelled = true
        for n in job.chunks.indices where job.chunks[n].state == .planned { job.chunks[n].state = .withdrawn }
        try job.save(path)
        var jobs: [Cancellation.Job] = []
        for chunk in job.chunks {
            guard chunk.state == .submitted, let id = chunk.jobID else { continue }
            do {
                let current = try await batch.batchStatus(id)
                let after = current.state.isEnded ? current : try await batch.cancelBatch(id)
                jobs.append(Cancellation.Job(id: id, state: after.state))
            } catch {
                jobs.append(Cancellation.Job(id: id, error: BatchError.describe(error)))
            }
        }
        return Cancellation(jobs: jobs, inDoubt: job.chunks.count { $0.state == .submitting })
    }
}
