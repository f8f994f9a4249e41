import CommandPipeline
import CommandPipelineBatch
import Foundation

/// `pipeline batch …`: a shell over `BatchRun` (the CommandPipelineBatch library, which owns
/// the job file, its restart rules, planning, collect and retry). Here: the path rule, the
/// provider made from the flags (checked against the job file), the library's answers as JSON
/// lines and messages, and its errors as exit statuses. See Design/batch.md.
enum BatchCommand {
    /// Exit status when jobs have not ended yet (or a submission cannot be reconciled).
    static let notFinished: Int32 = 4

    static func main(_ invocation: BatchInvocation) async -> Int32 {
        do throws(BatchError) {
            switch invocation.action {
            case .submit: return try await submit(invocation)
            case .status: return try await status(invocation)
            case .collect: return try await collect(invocation)
            case .retry: return try await retry(invocation)
            case .cancel: return try await cancel(invocation)
            case .help: return Pipeline.printed(BatchInvocation.help + "\n")
            }
        } catch {
            let status: Int32 = switch error.kind {
            case .invalid: 2
            case .provider: 1
            case .write: 3
            case .notFinished: notFinished
            }
            if status == 2 { return Pipeline.usageFailure(UsageError(message: error.message, hint: error.hint)) }
            StandardError.write("Error: \(StandardError.oneLine(error.message))\n")
            return status
        }
    }

    private static func note(_ invocation: BatchInvocation) -> (String) -> Void {
        { text in if !invocation.quiet { StandardError.write(StandardError.oneLine(text) + "\n") } }
    }

    /// The run of the job file: paths checked by the path rule, the provider made from the flags
    /// and, for an existing job file, its provider — after the job file's endpoint was checked
    /// against the flags (a job file never decides where the key goes).
    private static func open(_ invocation: BatchInvocation) throws(BatchError) -> BatchRun {
        let path = invocation.jobFile
        var options = invocation.run
        do throws(UsageError) {
            let use: PathArgument.Use = invocation.action == .submit ? .database : .read
            _ = try PathArgument.check(path, option: "--job", use: use)
            if use == .database || invocation.action == .collect || invocation.action == .retry {
                _ = try PathArgument.check(BatchJobFile.manifestPath(path), option: "--job (its manifest)", use: use)
            }
        } catch {
            throw BatchError(.invalid, error.message, hint: error.hint)
        }
        if let recorded = try BatchRun.jobFile(at: path) {
            // Without --provider the file's provider is taken; a --provider given must be the file's.
            var given = endpoint(options)
            if !invocation.providerGiven { given.provider = recorded.endpoint.provider }
            if let problem = recorded.mismatch(with: given, path: path) { throw problem }
            if let problem = keyProblem(recorded.endpoint.provider, invocation, path: path) { throw problem }
            options.provider = recorded.endpoint.provider
            if let names = recorded.endpoint.capabilities { options.capabilities = Set(names.compactMap(ProviderCapability.init(rawValue:))) }
        }
        options.mockBatchDirectory = path + ".mock"
        switch Pipeline.makeProvider(options) {
        case .failure(let error): throw BatchError(.invalid, error.message, hint: error.hint)
        case .success(let provider):
            var run = try BatchRun(jobFile: path, provider: provider)
            if let crashAfter = ProcessInfo.processInfo.environment["PIPELINE_BATCH_TEST_CRASH_AFTER_SUBMITS"].flatMap(Int.init) {
                run.afterSending = { sent in if sent >= crashAfter { _exit(137) } }   // tests: killed between sending and recording
            }
            return run
        }
    }

    /// The batch key rule: where a key goes must come from the operator, never from the job
    /// file alone. The provider decides the default endpoint and the default key variable
    /// (e.g. ANTHROPIC_API_KEY), so a job file for a provider that reads a key is used only when
    /// `--provider` names that provider too (a different one is refused by `mismatch`); naming
    /// the variable with `--api-key-env` is not enough, or a job file edited to say "gemini"
    /// would send the operator's OpenAI key to Google's endpoint. `mock` reads no key. See
    /// Design/batch.md.
    static func keyProblem(_ recorded: String, _ invocation: BatchInvocation, path: String) -> BatchError? {
        guard recorded != "mock", !invocation.providerGiven else { return nil }
        return BatchError(
            .invalid,
            "job file '\(path)' was made for --provider \(recorded), but this command names no --provider; "
                + "the job file alone does not choose the endpoint or the key sent to it",
            hint: "give --provider \(recorded) (and --api-key-env VAR if 'batch submit' was given one)")
    }

    private static func endpoint(_ options: RunOptions) -> BatchJobFile.Endpoint {
        BatchJobFile.Endpoint(
            provider: options.provider, baseURL: options.baseURL, apiKeyEnv: options.apiKeyEnv, allowInsecureHTTP: options.allowInsecureHTTP,
            capabilities: options.capabilities.map { $0.map(\.rawValue).sorted() })
    }

    private static func submit(_ invocation: BatchInvocation) async throws(BatchError) -> Int32 {
        let run = try open(invocation)
        if StandardStreams.stdinClosed {
            throw BatchError(.invalid, "cannot read stdin: it is closed; give commands on stdin, e.g. pipeline batch submit --job job.json < commands.jsonl")
        }
        guard let input = BatchInput.read(fd: 0) else { throw BatchError(.invalid, "cannot read stdin: \(String(cString: strerror(errno)))") }
        let sent = try await run.submit(input, endpoint: endpoint(invocation.run), maxRequestsPerJob: invocation.maxRequestsPerJob, log: note(invocation))
        let summary: JSONValue = [
            "job_file": .string(run.path), "provider": .string(run.providerName), "commands": .int(sent.commands), "requests": .int(sent.requests),
            "rejected": .int(sent.rejected), "jobs": .array(sent.jobs.map { $0.map(JSONValue.string) ?? .null }),
        ]
        return Pipeline.printed(JSONSerializer.serialize(summary) + "\n")
    }

    /// The progress, polled until every job has ended with `--wait`: a live line on a terminal,
    /// a line every 30 s at most off one (a log shows life without flooding).
    private static func progress(_ invocation: BatchInvocation, _ run: BatchRun) async throws(BatchError) -> BatchProgress {
        let live = invocation.wait && !invocation.quiet && StandardError.isTerminal
        let logged = invocation.wait && !invocation.quiet && !StandardError.isTerminal
        let clock = ContinuousClock()
        var lastLogged: ContinuousClock.Instant?
        let waiting = invocation.wait
            ? BatchWaiting(pollInterval: .milliseconds(Int(invocation.pollSeconds * 1000)), timeout: invocation.waitTimeoutSeconds.map { .milliseconds(Int($0 * 1000)) })
            : nil
        defer { if live { StandardError.write("\n") } }
        return try await run.status(waiting: waiting, observe: { progress in
            let now = Date().timeIntervalSince1970
            let elapsed = progress.submittedAt.flatMap { now >= $0 ? Progress.duration(now - $0) : nil }
            let line = StandardError.oneLine(progress.line(elapsed: elapsed))
            if live { StandardError.writeRaw("\r\u{1b}[2K" + line) }
            if logged, !progress.allEnded, lastLogged.map({ clock.now - $0 >= .seconds(30) }) ?? true {
                StandardError.write(line + "\n")
                lastLogged = clock.now
            }
        }, log: note(invocation))
    }

    private static func status(_ invocation: BatchInvocation) async throws(BatchError) -> Int32 {
        let progress = try await progress(invocation, try open(invocation))
        let written = Pipeline.printed(JSONSerializer.serialize(progress.json) + "\n")
        if written != 0 { return written }
        return invocation.wait && !progress.allEnded ? notFinished : 0
    }

    private static func collect(_ invocation: BatchInvocation) async throws(BatchError) -> Int32 {
        let run = try open(invocation)
        // Batch prices: the built-in catalog, with --models over it (as run reads it).
        var catalog = ModelCatalog.builtin
        if let models = invocation.modelsFile {
            switch CatalogFile.load(models, over: catalog) {
            case .success(let loaded): catalog = loaded
            case .failure(let problem): throw BatchError(.invalid, "option '--models \(models)': \(problem)")
            }
        }
        if invocation.wait { _ = try await progress(invocation, run) }
        // The keys this collect can see (the job's key variable and the defaults), for parsed answers.
        var keyOptions = RunOptions()
        keyOptions.apiKeyEnv = invocation.run.apiKeyEnv
        let writer = LineWriter(fd: 1)
        let collected = try await run.collect(catalog: catalog, secrets: Pipeline.secrets(keyOptions)) { record in writer.write(record.line) }
        _ = writer.flush()
        if let text = writer.failureText { return Pipeline.outputFailure(text, written: writer.linesWritten) }
        note(invocation)("batch: \(collected.commands) commands collected, \(collected.failed) failed" + collected.costSummary)
        return collected.failed > 0 ? 1 : 0
    }

    private static func retry(_ invocation: BatchInvocation) async throws(BatchError) -> Int32 {
        let run = try open(invocation)
        let retried = try await run.retry(log: note(invocation))
        if retried.requests == 0 {
            note(invocation)("batch: nothing to retry: every request of job file '\(run.path)' has an answer (or was cancelled); no job was submitted")
        } else {
            note(invocation)("batch: \(retried.requests) request\(retried.requests == 1 ? "" : "s") of \(retried.commands) command\(retried.commands == 1 ? "" : "s") sent again in \(retried.jobs.count) job\(retried.jobs.count == 1 ? "" : "s"); collect when they have ended")
        }
        let summary: JSONValue = [
            "job_file": .string(run.path), "retried_requests": .int(retried.requests), "commands": .int(retried.commands),
            "jobs": .array(retried.jobs.map(JSONValue.string)), "resumed": .bool(retried.resumed),
        ]
        return Pipeline.printed(JSONSerializer.serialize(summary) + "\n")
    }

    private static func cancel(_ invocation: BatchInvocation) async throws(BatchError) -> Int32 {
        let cancelled = try await open(invocation).cancel()
        let jobs: [JSONValue] = cancelled.jobs.map { job in
            job.state.map { ["job_id": .string(job.id), "state": .string($0.rawValue)] } ?? ["job_id": .string(job.id), "error": .string(job.error ?? "")]
        }
        let summary: JSONValue = ["cancelled": .bool(true), "jobs": .array(jobs), "in_doubt_jobs": .int(cancelled.inDoubt)]
        let written = Pipeline.printed(JSONSerializer.serialize(summary) + "\n")
        if written != 0 { return written }
        return cancelled.jobs.contains { $0.error != nil } ? 1 : 0
    }
}
