import CommandPipeline

extension BatchRun {
    /// What `retry` sent.
    public struct Retry: Sendable {
        /// Requests sent again (0: nothing had failed).
        public var requests: Int
        /// Commands they belong to.
        public var commands: Int
        /// The new jobs, recorded in the job file after the others.
        public var jobs: [String]
        /// True when this call finished sending a retry that an earlier call had started.
        public var resumed: Bool
    }

    /// Sends again, as new jobs recorded in the same job file, every request of the ended jobs
    /// whose answer is a failure — failed, expired, unreadable, or in a job that failed whole —
    /// but not the cancelled or withdrawn ones (cancelling was asked for). Needs every job ended
    /// (else `.notFinished`). Restart-safe like `submit`: the new chunks are recorded `planned`
    /// before anything is sent, then sent by the same rules; a call that finds a retry's chunks
    /// not yet sent finishes sending them (and sends nothing else). `collect` then takes each
    /// request's latest successful answer.
    public func retry(maxRequestsPerJob: Int? = nil, log: (String) -> Void = { _ in }) async throws(BatchError) -> Retry {
        var job = try BatchJobFile.load(path)
        guard !job.cancelled else {
            throw BatchError(.invalid, "job file '\(path)' was cancelled: nothing is sent again", hint: "submit the commands again with a new --job file")
        }
        // A retry killed before all its jobs were recorded: finish it first.
        let pending = try pendingRetries(job)
        if !pending.isEmpty, !job.chunks.prefix(job.submitChunks).contains(where: { $0.state == .planned || $0.state == .submitting }) {
            try await send(&job, requests: pending, again: "retry", log: log)
            let chunks = pending.keys.sorted()
            let ids = chunks.flatMap { job.chunks[$0].requestIDs ?? [] }
            return Retry(requests: ids.count, commands: Self.commands(of: ids), jobs: chunks.compactMap { job.chunks[$0].jobID }, resumed: true)
        }
        let progress = try await endedProgress(
            job, then: "retry sends again the failed requests of ended jobs: wait until every job has ended ('pipeline batch status \(path) --wait'), then retry")
        let manifest = try BatchManifest.load(path, job: job)
        let answers = try await BatchAnswers.fetch(job, progress: progress, batch: batch, provider: providerName)
        var failed: [String] = []
        for case .command(let index, _, _, let chunks) in manifest.lines {
            for (call, chunk) in chunks.enumerated() {
                let id = BatchPlan.requestID(index: index, call: call)
                if case .failure(let error) = answers.outcome(id, chunk: chunk).result, error.kind != .cancelled { failed.append(id) }
            }
        }
        guard !failed.isEmpty else { return Retry(requests: 0, commands: 0, jobs: [], resumed: false) }
        // The same split as submit's, over the failed requests in input order.
        let built = try manifest.requests(Set(failed))
        var packer = BatchPlan.Packer(limits: batch.batchLimits, maxRequestsPerJob: maxRequestsPerJob)
        for id in failed {
            guard let item = built[id] else { continue }
            switch BatchPlan.sized(item, call: 0, batch: batch, provider: providerName) {
            case .success(let size): _ = packer.add(item, size: size)
            case .failure(let error): throw BatchError(.invalid, "request \(id) no longer fits in a batch job: \(error.message)")
            }
        }
        let first = job.chunks.count
        job.chunks += BatchPlan.jobChunks(packer.chunks, nonce: job.nonce, first: first, retry: true)
        // Recorded before anything is sent: a kill from here on is finished by the next retry.
        try job.save(path)
        var requests: [Int: [BatchRequest]] = [:]
        for (n, chunk) in packer.chunks.enumerated() { requests[first + n] = chunk.requests }
        try await send(&job, requests: requests, again: "retry", log: log)
        return Retry(requests: failed.count, commands: Self.commands(of: failed), jobs: job.chunks[first...].compactMap(\.jobID), resumed: false)
    }

    /// How many commands the request ids `r<index>c<call>` belong to.
    static func commands(of ids: [String]) -> Int {
        Set(ids.map { $0.prefix { $0 != "c" } }).count
    }
}
