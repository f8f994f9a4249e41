import CommandPipeline

/// Every answer of a run's ended jobs, by chunk and request id, and the one rule that picks a
/// request's answer when a retry sent it again: its latest successful answer, else its latest
/// failure (a retry's job that was never sent does not count). One unreadable line or a
/// request answered twice in a job fails that request in that job only (issue 21 class 6).
struct BatchAnswers {
    var provider: String
    /// By chunk: the results of its job, by request id.
    var results: [Int: [String: Result<GenerationResponse, APIError>]] = [:]
    /// By chunk: the result file's lines that name no request.
    var unreadable: [Int: [String]] = [:]
    /// By chunk: its job as last seen.
    var jobs: [Int: BatchJob] = [:]
    /// By request id: the retry chunks that sent it again, in order.
    var retries: [String: [Int]] = [:]

    /// Fetches the results of every ended job of `progress` (a failed job has none).
    static func fetch(_ job: BatchJobFile, progress: BatchProgress, batch: any BatchCapability, provider: String) async throws(BatchError) -> BatchAnswers {
        var answers = BatchAnswers(provider: provider)
        for (n, chunk) in job.chunks.enumerated() {
            for id in chunk.requestIDs ?? [] { answers.retries[id, default: []].append(n) }
        }
        for item in progress.jobs {
            answers.jobs[item.chunk] = item.job
            guard item.job.state != .failed else { continue }
            let set: BatchResultSet
            do { set = try await batch.batchResultSet(item.job.id) } catch {
                throw BatchError(.provider, "cannot fetch the results of job \(item.job.id): \(BatchError.describe(error))")
            }
            var count: [String: Int] = [:]
            var results: [String: Result<GenerationResponse, APIError>] = [:]
            for result in set.results {
                let seen = (count[result.id] ?? 0) + 1
                count[result.id] = seen
                results[result.id] = seen == 1 ? result.outcome : .failure(duplicate(result.id, answers: seen, provider: provider))
            }
            answers.results[item.chunk] = results
            if !set.unreadable.isEmpty { answers.unreadable[item.chunk] = set.unreadable }
        }
        return answers
    }

    /// The answer taken for request `id`, first sent in chunk `chunk`, and the job it came from.
    func outcome(_ id: String, chunk: Int) -> (result: Result<GenerationResponse, APIError>, job: String?) {
        var latest: (result: Result<GenerationResponse, APIError>, job: String?)?
        var succeeded: (result: Result<GenerationResponse, APIError>, job: String?)?
        for n in [chunk] + (retries[id] ?? []) {
            if n != chunk && jobs[n] == nil { continue }   // a retry's job never sent
            let answer = (result: results[n]?[id] ?? .failure(missing(id, chunk: n)), job: jobs[n]?.id)
            if case .success = answer.result { succeeded = answer }
            latest = answer
        }
        return succeeded ?? latest ?? (.failure(missing(id, chunk: chunk)), nil)
    }

    /// Why a request has no result in the job of `chunk`.
    func missing(_ id: String, chunk: Int) -> APIError {
        guard let state = jobs[chunk] else {
            return APIError(.cancelled, "the batch was cancelled before request \(id) was submitted", provider: provider, code: "batch_withdrawn")
        }
        if let lines = unreadable[chunk] {
            let shown = lines.prefix(3).joined(separator: "; ") + (lines.count > 3 ? "; …" : "")
            return APIError(
                .providerError,
                "batch job \(state.id) ended without a readable result for request \(id): its result file has \(lines.count) unreadable line\(lines.count == 1 ? "" : "s") (\(shown))",
                provider: provider, retryable: true, code: "batch_result_unreadable")
        }
        switch state.state {
        case .expired:
            return APIError(.providerError, "batch job \(state.id) expired before request \(id) ran", provider: provider, retryable: true, code: "batch_expired")
        case .cancelled, .cancelling:
            return APIError(.cancelled, "batch job \(state.id) was cancelled before request \(id) ran", provider: provider, code: "batch_cancelled")
        case .failed:
            return APIError(.providerError, "batch job \(state.id) failed: \(state.message ?? "the provider gave no reason")", provider: provider, code: "batch_failed")
        default:
            return APIError(.providerError, "batch job \(state.id) ended without a result for request \(id)", provider: provider, code: "batch_result_missing")
        }
    }

    /// A request answered by more than one result (in one file or across the job's files).
    static func duplicate(_ id: String, answers: Int, provider: String) -> APIError {
        APIError(
            .providerError, "the batch results answer request \(id) \(answers) times; no answer is taken, run the command again",
            provider: provider, retryable: true, code: "batch_result_duplicate")
    }
}
