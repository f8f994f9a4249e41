import CommandPipeline
import Foundation

/// Where the jobs of a run are, as their provider last described them: `BatchRun.status`.
public struct BatchProgress: Sendable {
    public struct Job: Sendable {
        /// The chunk of the job file.
        public var chunk: Int
        public var job: BatchJob
    }

    public var jobs: [Job] = []
    /// Chunks not (or not surely) sent: `planned` or `submitting`.
    public var unsubmitted = 0
    /// Requests in the submitted jobs (a retry's requests count again, in their own job).
    public var total = 0
    public var succeeded = 0
    public var failed = 0
    /// When the first job's submission started (seconds since 1970).
    public var submittedAt: Double?

    public var allEnded: Bool { unsubmitted == 0 && jobs.allSatisfy { $0.job.state.isEnded } }

    /// The progress as `pipeline batch status` prints it.
    public var json: JSONValue {
        [
            "state": .string(unsubmitted > 0 ? "incomplete" : allEnded ? "ended" : "running"),
            "requests": .int(total), "succeeded": .int(succeeded), "failed": .int(failed), "pending": .int(max(0, total - succeeded - failed)),
            "unsubmitted_jobs": .int(unsubmitted),
            "jobs": .array(jobs.map { item in
                [
                    "job_id": .string(item.job.id), "state": .string(item.job.state.rawValue), "total": .int(item.job.counts.total),
                    "succeeded": .int(item.job.counts.succeeded), "failed": .int(item.job.counts.failed),
                ]
            }),
        ]
    }

    /// "batch: D/T requests done (F failed), N%, P pending, J/K jobs ended[, since submit 5m02s];
    /// jobs: state done/total (failed), …" (the first 4 jobs, then how many more). `elapsed`
    /// is the time since `submittedAt`, as the caller shows durations.
    public func line(elapsed: String? = nil) -> String {
        let done = succeeded + failed
        var text = "batch: \(done)/\(total) requests done (\(failed) failed)"
        if total > 0 { text += ", \(done * 100 / total)%" }
        text += ", \(max(0, total - done)) pending, \(jobs.count { $0.job.state.isEnded })/\(jobs.count + unsubmitted) jobs ended"
        if let elapsed { text += ", since submit " + elapsed }
        if jobs.count > 1 {
            let each = jobs.prefix(4).map { item in
                let c = item.job.counts
                return "\(item.job.state.rawValue) \(c.succeeded + c.failed)/\(c.total)" + (c.failed > 0 ? " (\(c.failed) failed)" : "")
            }
            text += "; jobs: " + each.joined(separator: ", ") + (jobs.count > 4 ? ", +\(jobs.count - 4) more" : "")
        }
        return text
    }
}

/// How `BatchRun.status` waits for the jobs to end.
public struct BatchWaiting: Sendable {
    public var pollInterval: Duration
    /// Give up after this long (the progress is returned as it stands).
    public var timeout: Duration?
    public init(pollInterval: Duration, timeout: Duration? = nil) {
        self.pollInterval = pollInterval
        self.timeout = timeout
    }
}

extension BatchRun {
    /// The jobs' progress. With `waiting`, polls until every job has ended (or the timeout),
    /// handing each poll to `observe`; a status request that fails retryably is retried
    /// (said through `log`), another throws `.provider`.
    public func status(
        waiting: BatchWaiting? = nil, observe: (BatchProgress) -> Void = { _ in }, log: (String) -> Void = { _ in }
    ) async throws(BatchError) -> BatchProgress {
        let job = try BatchJobFile.load(path)
        let clock = ContinuousClock()
        let start = clock.now
        while true {
            let progress: BatchProgress
            do { progress = try await poll(job) } catch {
                guard let waiting, error.retryable, !Task.isCancelled else { throw BatchError(.provider, "cannot read the jobs' status: \(error.description)") }
                log("Warning: cannot read the jobs' status (\(error.description)); trying again")
                try? await Task.sleep(for: waiting.pollInterval)
                continue
            }
            observe(progress)
            guard let waiting, !progress.allEnded, progress.unsubmitted == 0, !Task.isCancelled else { return progress }
            if let timeout = waiting.timeout, clock.now - start >= timeout { return progress }
            try? await Task.sleep(for: waiting.pollInterval)
        }
    }

    /// One status request per submitted job.
    func poll(_ job: BatchJobFile) async throws(APIError) -> BatchProgress {
        var progress = BatchProgress()
        for (n, chunk) in job.chunks.enumerated() {
            guard chunk.state == .submitted, let id = chunk.jobID else {
                if chunk.state != .withdrawn { progress.unsubmitted += 1 }
                continue
            }
            let state: BatchJob
            do { state = try await batch.batchStatus(id) } catch { throw APIError(wrapping: error, provider: providerName, context: "reading the status of job \(id)") }
            progress.jobs.append(BatchProgress.Job(chunk: n, job: state))
            if let since = chunk.since { progress.submittedAt = min(progress.submittedAt ?? since, since) }
            progress.total += chunk.requests
            progress.succeeded += min(state.counts.succeeded, chunk.requests)
            progress.failed += min(state.counts.failed, chunk.requests - min(state.counts.succeeded, chunk.requests))
        }
        return progress
    }
}
