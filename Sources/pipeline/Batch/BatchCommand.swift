import CommandPipeline
import Foundation

/// `pipeline batch …`: submit, status, collect, cancel. See Design/batch.md.
enum BatchCommand {
    /// Exit status when jobs have not ended yet (or submit met a job it cannot reconcile).
    static let notFinished: Int32 = 4

    static func main(_ invocation: BatchInvocation) async -> Int32 {
        switch invocation.action {
        case .submit: return await submit(invocation)
        case .status: return await status(invocation)
        case .collect: return await collect(invocation)
        case .cancel: return await cancel(invocation)
        case .help: return Pipeline.printed(BatchInvocation.help + "\n")
        }
    }

    // MARK: shared

    private static func note(_ invocation: BatchInvocation, _ text: String) {
        if !invocation.quiet { StandardError.write(StandardError.oneLine(text) + "\n") }
    }

    private static func fail(_ text: String, status: Int32) -> Int32 {
        StandardError.write("Error: \(StandardError.oneLine(text))\n")
        return status
    }

    /// Where a job file would send the key, checked against the operator's flags: the job
    /// file is not trusted to decide it (it may come from elsewhere). The endpoint and the key's
    /// variable must be the ones the flags give (the provider's defaults when no flag is
    /// given), and plain http off this machine needs the flag again. Nil when they agree.
    static func endpointProblem(_ job: JobFile, flags: RunOptions, path: String) -> UsageError? {
        func normalized(_ url: String?) -> String? {
            guard var url, !url.isEmpty else { return nil }
            while url.hasSuffix("/") { url.removeLast() }
            return url
        }
        func shown(_ url: String) -> String {
            // Never repeat a password from the file.
            guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@"),
                !url[scheme.upperBound..<at].contains("/") else { return StandardError.oneLine(url) }
            return StandardError.oneLine(String(url[..<scheme.upperBound]) + String(url[url.index(after: at)...]))
        }
        let hint = "a job file never decides where the key goes: repeat the options 'batch submit' was given, or make a new job file"
        if normalized(job.baseURL) != normalized(flags.baseURL) {
            let recorded = job.baseURL.map { "--base-url \(shown($0))" } ?? "the provider's default endpoint"
            let given = flags.baseURL.map { "--base-url \(shown($0))" } ?? "no --base-url"
            return UsageError(message: "job file '\(StandardError.oneLine(path))' was made for \(recorded), but this command has \(given)", hint: hint)
        }
        if (job.apiKeyEnv ?? "") != (flags.apiKeyEnv ?? "") {
            let recorded = job.apiKeyEnv.map { "--api-key-env \(StandardError.oneLine($0))" } ?? "the provider's default key variable"
            let given = flags.apiKeyEnv.map { "--api-key-env \(StandardError.oneLine($0))" } ?? "no --api-key-env"
            return UsageError(message: "job file '\(StandardError.oneLine(path))' was made with \(recorded), but this command has \(given)", hint: hint)
        }
        if job.allowInsecureHTTP && !flags.allowInsecureHTTP {
            return UsageError(message: "job file '\(StandardError.oneLine(path))' was made with --allow-insecure-http; give it again to send the key over plain http", hint: hint)
        }
        return nil
    }

    /// The provider a job file was made for (the key is read from its variable again): the
    /// endpoint, key variable and plain-http permission come from the flags, which must agree
    /// with the job file (`endpointProblem`).
    private static func provider(for job: JobFile, path: String, base: RunOptions) -> Result<any BatchCapability & GenerationCapability, UsageError> {
        if let problem = endpointProblem(job, flags: base, path: path) { return .failure(problem) }
        var options = base
        options.provider = job.provider
        if let names = job.capabilities {
            options.capabilities = Set(names.compactMap(ProviderCapability.init(rawValue:)))
        }
        options.mockBatchDirectory = JobFile.mockDirectory(path)
        switch Pipeline.makeProvider(options) {
        case .failure(let error): return .failure(error)
        case .success(let provider):
            guard let batch = provider.batch else {
                return .failure(UsageError(
                    message: "provider '\(provider.providerName)' has no batch service here (capability 'batch' is missing)",
                    hint: job.provider == "openai" ? "declare it with --capabilities generation,batch for a compatible server that has /v1/batches" : nil))
            }
            return .success(BatchAdapter(generation: provider, batch: batch))
        }
    }

    // MARK: submit

    static func submit(_ invocation: BatchInvocation) async -> Int32 {
        let path = invocation.jobFile
        // The path rule (PathArgument): the job file and its manifest are regular files or new
        // ones; a directory, a FIFO or a device is refused before anything is read or sent.
        do throws(UsageError) {
            _ = try PathArgument.check(path, option: "--job", use: .database)
            _ = try PathArgument.check(JobFile.manifestPath(path), option: "--job (its manifest)", use: .database)
        } catch {
            return Pipeline.usageFailure(error)
        }
        if StandardStreams.stdinClosed {
            return Pipeline.usageFailure(UsageError(message: "cannot read stdin: it is closed; give commands on stdin, e.g. pipeline batch submit --job job.json < commands.jsonl"))
        }
        guard let input = BatchPlan.read(fd: 0) else {
            return Pipeline.usageFailure(UsageError(message: "cannot read stdin: \(String(cString: strerror(errno)))"))
        }
        var job: JobFile
        let existing = FileManager.default.fileExists(atPath: path)
        if existing {
            switch JobFile.load(path) {
            case .failure(let error): return Pipeline.usageFailure(error)
            case .success(let loaded): job = loaded
            }
        } else {
            var options = invocation.run
            options.mockBatchDirectory = JobFile.mockDirectory(path)
            job = JobFile(
                provider: options.provider, baseURL: options.baseURL, apiKeyEnv: options.apiKeyEnv, allowInsecureHTTP: options.allowInsecureHTTP,
                capabilities: options.capabilities.map { $0.map(\.rawValue).sorted() }, nonce: String(UUID().uuidString.lowercased().prefix(8)),
                inputSHA256: "", commands: 0, requests: 0, manifestSHA256: "", cancelled: false, chunks: [])
        }
        let batch: any BatchCapability & GenerationCapability
        switch provider(for: job, path: path, base: invocation.run) {
        case .failure(let error): return Pipeline.usageFailure(error)
        case .success(let made): batch = made
        }
        let plan = BatchPlan.make(input: input, batch: batch, providerName: batch.providerName, maxRequestsPerJob: invocation.maxRequestsPerJob)
        let planned = plan.jobChunks(nonce: job.nonce)
        let manifestPath = JobFile.manifestPath(path)
        if existing {
            guard plan.inputSHA256 == job.inputSHA256 else {
                return Pipeline.usageFailure(UsageError(
                    message: "the input is not the one job file '\(path)' was made from (its SHA-256 differs); give the same commands, or a new --job file"))
            }
            let sameChunks = planned.count == job.chunks.count
                && zip(planned, job.chunks).allSatisfy { $0.marker == $1.marker && $0.model == $1.model && $0.requests == $1.requests }
            guard sameChunks else {
                return Pipeline.usageFailure(UsageError(
                    message: "job file '\(path)' splits this input into other jobs than these options do; re-run submit with the options it was made with (--max-requests-per-job)"))
            }
        } else {
            let manifest = plan.manifest()
            var digest = SHA256()
            digest.update(manifest)
            job.inputSHA256 = plan.inputSHA256
            job.commands = plan.entries.count
            job.requests = plan.requestCount
            job.manifestSHA256 = digest.finalizeHex()
            job.chunks = planned
            // The manifest first: a job file always has its manifest.
            if let problem = AtomicFile.write(manifest, to: manifestPath) ?? job.save(path) {
                return fail("cannot write the job file: \(problem)", status: 3)
            }
        }
        let crashAfter = ProcessInfo.processInfo.environment["PIPELINE_BATCH_TEST_CRASH_AFTER_SUBMITS"].flatMap(Int.init)
        var submittedHere = 0
        for n in job.chunks.indices {
            let chunk = job.chunks[n]
            if chunk.state == .submitted || chunk.state == .withdrawn { continue }
            if job.cancelled {
                job.chunks[n].state = .withdrawn
                if let problem = job.save(path) { return fail("cannot write the job file: \(problem)", status: 3) }
                continue
            }
            let requests = plan.chunks[n].requests
            if chunk.state == .submitting {
                // Killed between sending and recording: the provider may hold the job already.
                let marker = BatchMarker(
                    name: chunk.marker, requestCount: chunk.requests, notBefore: Date(timeIntervalSince1970: chunk.since ?? 0),
                    knownJobs: Set(job.chunks.compactMap(\.jobID)))
                let lookup: BatchLookup
                do { lookup = try await batch.findBatch(marker) } catch {
                    return fail("cannot check whether job \(n + 1) of \(job.chunks.count) (marker \(chunk.marker)) reached the provider: \(describe(error)); run submit again later", status: notFinished)
                }
                switch lookup {
                case .found(let found):
                    job.chunks[n].state = .submitted
                    job.chunks[n].jobID = found.id
                    if let problem = job.save(path) { return fail("cannot write the job file: \(problem)", status: 3) }
                    note(invocation, "job \(n + 1)/\(job.chunks.count): already submitted as \(found.id) (found by its marker \(chunk.marker))")
                    continue
                case .ambiguous(let why):
                    return fail(
                        "job \(n + 1) of \(job.chunks.count) (marker \(chunk.marker)) may have reached the provider, which cannot tell: \(why); nothing was submitted again. Check the provider's batch list, then set this chunk's \"state\" to \"planned\" in '\(path)' to submit it, or to \"submitted\" with its \"job_id\"",
                        status: notFinished)
                case .absent:
                    break
                }
            }
            job.chunks[n].state = .submitting
            job.chunks[n].since = Date().timeIntervalSince1970.rounded(.down)
            if let problem = job.save(path) { return fail("cannot write the job file: \(problem)", status: 3) }
            let marker = BatchMarker(name: chunk.marker, requestCount: requests.count, notBefore: Date(timeIntervalSince1970: job.chunks[n].since!))
            let submitted: BatchJob
            do { submitted = try await batch.submitBatch(requests, marker: marker) } catch {
                job.chunks[n].state = .planned
                let saved = job.save(path)
                let prefix = "submitting job \(n + 1) of \(job.chunks.count) failed: \(describe(error))"
                if let saved { return fail("\(prefix); and the job file could not be written: \(saved)", status: 3) }
                return fail("\(prefix); the jobs before it are recorded, run submit again to continue", status: 1)
            }
            submittedHere += 1
            if let crashAfter, submittedHere >= crashAfter { _exit(137) }   // tests: killed between sending and recording
            job.chunks[n].state = .submitted
            job.chunks[n].jobID = submitted.id
            if let problem = job.save(path) { return fail("cannot write the job file: \(problem)", status: 3) }
            note(invocation, "job \(n + 1)/\(job.chunks.count): submitted as \(submitted.id) (\(requests.count) requests)")
        }
        let rejected = plan.entries.count { $0.rejectedLine != nil }
        let summary: JSONValue = [
            "job_file": .string(path), "provider": .string(batch.providerName), "commands": .int(job.commands), "requests": .int(job.requests),
            "rejected": .int(rejected), "jobs": .array(job.chunks.map { $0.jobID.map(JSONValue.string) ?? .null }),
        ]
        return Pipeline.printed(JSONSerializer.serialize(summary) + "\n")
    }

    private static func describe(_ error: any Error) -> String {
        (error as? APIError).map(\.description) ?? "\(error)"
    }

    // MARK: status

    struct Progress {
        var jobs: [(chunk: Int, job: BatchJob)] = []
        var unsubmitted = 0
        var total = 0
        var succeeded = 0
        var failed = 0
        var allEnded: Bool { unsubmitted == 0 && jobs.allSatisfy { $0.job.state.isEnded } }

        var json: JSONValue {
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

        /// When the first job's submission started (seconds since 1970), for "since submit".
        var submittedAt: Double?

        /// "batch: D/T requests done (F failed), N%, P pending, J/K jobs ended, since submit 5m02s;
        /// per job: state done/total (failed)" (the first 4 jobs, then how many more).
        func line(now: Double = Date().timeIntervalSince1970) -> String {
            let done = succeeded + failed
            var text = "batch: \(done)/\(total) requests done (\(failed) failed)"
            if total > 0 { text += ", \(done * 100 / total)%" }
            text += ", \(max(0, total - done)) pending, \(jobs.count { $0.job.state.isEnded })/\(jobs.count + unsubmitted) jobs ended"
            if let submittedAt, now >= submittedAt { text += ", since submit " + pipeline.Progress.duration(now - submittedAt) }
            if jobs.count > 1 {
                let each = jobs.prefix(4).map { item in
                    let c = item.job.counts
                    return "\(item.job.state.rawValue) \(c.succeeded + c.failed)/\(c.total)" + (c.failed > 0 ? " (\(c.failed) failed)" : "")
                }
                text += "; jobs: " + each.joined(separator: ", ") + (jobs.count > 4 ? ", +\(jobs.count - 4) more" : "")
            }
            return StandardError.oneLine(text)
        }

        var line: String { line() }
    }

    private static func poll(_ job: JobFile, _ batch: any BatchCapability) async throws -> Progress {
        var progress = Progress()
        for (n, chunk) in job.chunks.enumerated() {
            guard chunk.state == .submitted, let id = chunk.jobID else {
                if chunk.state != .withdrawn { progress.unsubmitted += 1 }
                continue
            }
            let state = try await batch.batchStatus(id)
            progress.jobs.append((n, state))
            if let since = chunk.since { progress.submittedAt = min(progress.submittedAt ?? since, since) }
            progress.total += chunk.requests
            progress.succeeded += min(state.counts.succeeded, chunk.requests)
            progress.failed += min(state.counts.failed, chunk.requests - min(state.counts.succeeded, chunk.requests))
        }
        return progress
    }

    /// Polls (with `--wait`, until every job ended or the timeout); nil with a status to exit with.
    private static func settle(_ invocation: BatchInvocation, _ job: JobFile, _ batch: any BatchCapability) async -> Result<Progress, ExitStatus> {
        let clock = ContinuousClock()
        let start = clock.now
        let live = invocation.wait && !invocation.quiet && StandardError.isTerminal
        // Off a terminal, with --wait: the line every 30 s at most, so a log shows life without flooding.
        let logged = invocation.wait && !invocation.quiet && !StandardError.isTerminal
        var lastLogged: ContinuousClock.Instant?
        while true {
            let progress: Progress
            do { progress = try await poll(job, batch) } catch {
                let retryable = (error as? APIError)?.retryable ?? false
                guard invocation.wait && retryable else { return .failure(ExitStatus(fail("cannot read the jobs' status: \(describe(error))", status: 1))) }
                note(invocation, "Warning: cannot read the jobs' status (\(describe(error))); trying again")
                try? await Task.sleep(for: .seconds(invocation.pollSeconds))
                continue
            }
            if live { StandardError.writeRaw("\r\u{1b}[2K" + progress.line) }
            if logged, !progress.allEnded, lastLogged.map({ clock.now - $0 >= .seconds(30) }) ?? true {
                StandardError.write(progress.line + "\n")
                lastLogged = clock.now
            }
            if progress.allEnded || !invocation.wait || progress.unsubmitted > 0 {
                if live { StandardError.write("\n") }
                return .success(progress)
            }
            if let limit = invocation.waitTimeoutSeconds, clock.now - start >= .milliseconds(Int(limit * 1000)) {
                if live { StandardError.write("\n") }
                return .success(progress)
            }
            try? await Task.sleep(for: .milliseconds(Int(invocation.pollSeconds * 1000)))
        }
    }

    struct ExitStatus: Error {
        var code: Int32
        init(_ code: Int32) { self.code = code }
    }

    static func status(_ invocation: BatchInvocation) async -> Int32 {
        let job: JobFile
        switch JobFile.load(invocation.jobFile) {
        case .failure(let error): return Pipeline.usageFailure(error)
        case .success(let loaded): job = loaded
        }
        let batch: any BatchCapability & GenerationCapability
        switch provider(for: job, path: invocation.jobFile, base: invocation.run) {
        case .failure(let error): return Pipeline.usageFailure(error)
        case .success(let made): batch = made
        }
        switch await settle(invocation, job, batch) {
        case .failure(let status): return status.code
        case .success(let progress):
            let written = Pipeline.printed(JSONSerializer.serialize(progress.json) + "\n")
            if written != 0 { return written }
            if invocation.wait && !progress.allEnded { return notFinished }
            return 0
        }
    }

    // MARK: collect

    static func collect(_ invocation: BatchInvocation) async -> Int32 {
        let path = invocation.jobFile
        let job: JobFile
        switch JobFile.load(path) {
        case .failure(let error): return Pipeline.usageFailure(error)
        case .success(let loaded): job = loaded
        }
        let batch: any BatchCapability & GenerationCapability
        switch provider(for: job, path: path, base: invocation.run) {
        case .failure(let error): return Pipeline.usageFailure(error)
        case .success(let made): batch = made
        }
        // Batch prices: the built-in catalog, with --models over it (as run reads it).
        var catalog = ModelCatalog.builtin
        if let models = invocation.modelsFile {
            switch CatalogFile.load(models, over: catalog) {
            case .success(let loaded): catalog = loaded
            case .failure(let problem): return Pipeline.usageFailure(UsageError(message: "option '--models \(models)': \(problem)"))
            }
        }
        let progress: Progress
        switch await settle(invocation, job, batch) {
        case .failure(let status): return status.code
        case .success(let p): progress = p
        }
        // The keys this collect can see (the job's key variable and the defaults), for parsed answers.
        var keyOptions = RunOptions()
        keyOptions.apiKeyEnv = job.apiKeyEnv
        let redactor = Pipeline.secrets(keyOptions)
        if progress.unsubmitted > 0 {
            return fail("\(progress.unsubmitted) of \(job.chunks.count) jobs were never submitted: run 'pipeline batch submit --job \(path)' again with the same input first", status: notFinished)
        }
        guard progress.allEnded else {
            return fail("\(progress.line); collect when every job has ended, or use --wait", status: notFinished)
        }
        do throws(UsageError) {
            _ = try PathArgument.check(JobFile.manifestPath(path), option: "--job (its manifest)", use: .read)
        } catch {
            return fail(error.message, status: 2)
        }
        guard let manifest = FileManager.default.contents(atPath: JobFile.manifestPath(path)) else {
            return fail("cannot read the manifest '\(JobFile.manifestPath(path))' of job file '\(path)'", status: 2)
        }
        var digest = SHA256()
        digest.update(manifest)
        guard digest.finalizeHex() == job.manifestSHA256 else {
            return fail("the manifest '\(JobFile.manifestPath(path))' does not match job file '\(path)' (its SHA-256 differs)", status: 2)
        }
        // Every result, by request id, with how a missing one is explained. One unreadable line
        // or a request answered twice fails that request only (issue 21 class 6).
        let provider = batch.providerName
        var results: [String: Result<GenerationResponse, APIError>] = [:]
        var answers: [String: Int] = [:]
        var unreadable: [String: [String]] = [:]
        var jobOfChunk: [Int: BatchJob] = [:]
        for (n, state) in progress.jobs {
            jobOfChunk[n] = state
            guard state.state != .failed else { continue }
            do {
                let set = try await batch.batchResultSet(state.id)
                for result in set.results {
                    answers[result.id, default: 0] += 1
                    results[result.id] = answers[result.id]! == 1
                        ? result.outcome : .failure(BatchCommand.duplicate(result.id, answers: answers[result.id]!, provider: provider))
                }
                if !set.unreadable.isEmpty { unreadable[state.id] = set.unreadable }
            } catch {
                return fail("cannot fetch the results of job \(state.id): \(describe(error))", status: 1)
            }
        }
        func missing(_ id: String, chunk: Int) -> APIError {
            guard let state = jobOfChunk[chunk] else {
                return APIError(.cancelled, "the batch was cancelled before request \(id) was submitted", provider: provider, code: "batch_withdrawn")
            }
            if let lines = unreadable[state.id] {
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
        let writer = LineWriter(fd: 1)
        var failedCommands = 0
        var spent = BatchSpending()
        var broken: String?
        for raw in manifest.split(separator: 0x0a) {
            guard let line = manifestLine(Array(raw), job: job) else {
                broken = "a line of the manifest is malformed"
                break
            }
            switch line {
            case .record(let bytes):
                failedCommands += 1
                writer.write(bytes)
            case .command(let index, let hash, let value, let chunks):
                guard case .success(let command) = BatchRecords.decode(value, index: index), command.plan.calls.count == chunks.count else {
                    broken = "command \(index) of the manifest no longer decodes"
                    break
                }
                let outcomes = chunks.enumerated().map { call, chunk -> Result<GenerationResponse, APIError> in
                    let id = BatchPlan.requestID(index: index, call: call)
                    return results[id] ?? .failure(missing(id, chunk: chunk))
                }
                let jobID = jobOfChunk[chunks[0]]?.id ?? "none"
                let made = BatchRecords.line(
                    command: command, index: index, inputHash: hash, provider: provider, job: jobID, outcomes: outcomes, catalog: catalog, redactor: redactor)
                if !made.succeeded { failedCommands += 1 }
                if let cost = made.cost { spent.add(cost) } else { spent.unpriced += 1 }
                writer.write(made.line)
            }
            if broken != nil || writer.failure != nil { break }
        }
        writer.flush()
        if let text = writer.failureText { return Pipeline.outputFailure(text, written: writer.linesWritten) }
        if let broken { return fail("\(broken) ('\(JobFile.manifestPath(path))')", status: 2) }
        note(invocation, "batch: \(job.commands) commands collected, \(failedCommands) failed" + spent.summary)
        return failedCommands > 0 ? 1 : 0
    }

    /// A request answered by more than one result (in one file or across the job's files).
    static func duplicate(_ id: String, answers: Int, provider: String) -> APIError {
        APIError(
            .providerError, "the batch results answer request \(id) \(answers) times; no answer is taken, run the command again",
            provider: provider, retryable: true, code: "batch_result_duplicate")
    }

    /// What the collected commands cost at batch prices, for the closing line.
    struct BatchSpending {
        var usd = 0.0
        var priced = 0
        /// Batched commands without a priced response (model not in the catalog, or no answer).
        var unpriced = 0

        mutating func add(_ cost: Cost) {
            usd += cost.totalUSD
            priced += 1
        }

        /// ", cost $0.001234 at catalog batch prices (3 commands priced, 1 unpriced)", or nothing
        /// when no command was priced.
        var summary: String {
            guard priced > 0 else { return "" }
            var notes = ["\(priced) command\(priced == 1 ? "" : "s") priced"]
            if unpriced > 0 { notes.append("\(unpriced) unpriced") }
            return String(format: ", cost $%.6f at catalog batch prices", usd) + " (" + notes.joined(separator: ", ") + ")"
        }
    }

    enum ManifestLine {
        case record([UInt8])
        case command(index: Int, hash: String, value: JSONValue, chunks: [Int])
    }

    private static func manifestLine(_ bytes: [UInt8], job: JobFile) -> ManifestLine? {
        guard case .object(let o)? = try? JSONParser.parse(bytes) else { return nil }
        if let record = o["record"]?.stringValue { return .record(Array(record.utf8) + [0x0a]) }
        guard let index = o["index"]?.intValue, (0..<job.commands).contains(index), let hash = o["input_hash"]?.stringValue,
            let value = o["command"], case .array(let list)? = o["chunks"], !list.isEmpty
        else { return nil }
        let chunks = list.compactMap(\.intValue)
        guard chunks.count == list.count, chunks.allSatisfy({ job.chunks.indices.contains($0) }) else { return nil }
        return .command(index: index, hash: hash, value: value, chunks: chunks)
    }

    // MARK: cancel

    static func cancel(_ invocation: BatchInvocation) async -> Int32 {
        let path = invocation.jobFile
        var job: JobFile
        switch JobFile.load(path) {
        case .failure(let error): return Pipeline.usageFailure(error)
        case .success(let loaded): job = loaded
        }
        let batch: any BatchCapability & GenerationCapability
        switch provider(for: job, path: path, base: invocation.run) {
        case .failure(let error): return Pipeline.usageFailure(error)
        case .success(let made): batch = made
        }
        // First the mark, so a submit run later sends nothing more.
        job.cancelled = true
        for n in job.chunks.indices where job.chunks[n].state == .planned { job.chunks[n].state = .withdrawn }
        if let problem = job.save(path) { return fail("cannot write the job file: \(problem)", status: 3) }
        var states: [JSONValue] = []
        var failures = 0
        for chunk in job.chunks {
            guard chunk.state == .submitted, let id = chunk.jobID else { continue }
            do {
                let current = try await batch.batchStatus(id)
                let after = current.state.isEnded ? current : try await batch.cancelBatch(id)
                states.append(["job_id": .string(id), "state": .string(after.state.rawValue)])
            } catch {
                failures += 1
                states.append(["job_id": .string(id), "error": .string(describe(error))])
            }
        }
        let inDoubt = job.chunks.count { $0.state == .submitting }
        let summary: JSONValue = ["cancelled": .bool(true), "jobs": .array(states), "in_doubt_jobs": .int(inDoubt)]
        let written = Pipeline.printed(JSONSerializer.serialize(summary) + "\n")
        if written != 0 { return written }
        return failures > 0 ? 1 : 0
    }
}

/// A provider's generation and batch sides as one value.
struct BatchAdapter: GenerationCapability, BatchCapability {
    let generation: any GenerationCapability
    let batch: any BatchCapability
    var providerName: String { generation.providerName }
    func generate(_ request: GenerationRequest) async throws -> GenerationResponse { try await generation.generate(request) }
    var batchLimits: BatchLimits { batch.batchLimits }
    func batchSize(of request: BatchRequest) throws -> Int { try batch.batchSize(of: request) }
    func submitBatch(_ requests: [BatchRequest], marker: BatchMarker) async throws -> BatchJob { try await batch.submitBatch(requests, marker: marker) }
    func findBatch(_ marker: BatchMarker) async throws -> BatchLookup { try await batch.findBatch(marker) }
    func batchStatus(_ jobID: String) async throws -> BatchJob { try await batch.batchStatus(jobID) }
    func batchResults(_ jobID: String) async throws -> [BatchResult] { try await batch.batchResults(jobID) }
    func batchResultSet(_ jobID: String) async throws -> BatchResultSet { try await batch.batchResultSet(jobID) }
    func cancelBatch(_ jobID: String) async throws -> BatchJob { try await batch.cancelBatch(jobID) }
}
