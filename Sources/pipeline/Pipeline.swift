import CommandPipeline
import CommandPipelineReport
import CommandPipelineHTTP
import CommandPipelineSQLite
import Foundation

/// The `pipeline` command: parse flags, build the engine, stream. All execution is the library's.
enum Pipeline {
    static func main(_ arguments: [String]) async -> Int32 {
        let invocation: Invocation
        do throws(UsageError) {
            invocation = try ArgumentParser.parse(arguments)
        } catch {
            return usageFailure(error)
        }
        switch invocation {
        case .help:
            return printed(Help.text + "\n")
        case .version:
            return printed(Help.version + "\n")
        case .capabilities(let options):
            switch makeProvider(options) {
            case .failure(let error): return usageFailure(error)
            case .success(let provider):
                let capabilities = ProviderCapability.probe(provider).sorted()
                let record: JSONValue = ["provider": .string(provider.providerName), "capabilities": .array(capabilities.map { .string($0.rawValue) })]
                return printed(JSONSerializer.serialize(record) + "\n")
            }
        case .batch(let batch):
            return await BatchCommand.main(batch)
        case .report(let report):
            return ReportCommand.main(report)
        case .cache(let cache):
            return CacheCommand.main(cache)
        case .validate(let options):
            return await stream(options, validateOnly: true)
        case .run(let options):
            return await stream(options, validateOnly: false)
        }
    }

    /// Writes `text` to stdout: 0, or 3 with a message when it cannot be written.
    static func printed(_ text: String) -> Int32 {
        if StandardStreams.writeStdout(text) { return 0 }
        return outputFailure(StandardStreams.stdoutClosed ? "stdout is closed" : String(cString: strerror(errno)))
    }

    /// Exit status 3: results could not be written.
    static func outputFailure(_ reason: String, written: Int? = nil) -> Int32 {
        var text = "Error: cannot write results: \(reason)"
        if let written { text += "; the run stopped after \(written) result line\(written == 1 ? "" : "s") written" }
        StandardError.write(text + "\n")
        return 3
    }

    /// Every variable that holds a key of this run: each provider's default variable, the one
    /// `--api-key-env` names, a PostgreSQL sink's password variables, and each deployment's `api_key_env` (`deployments`: the
    /// `--deployments` file, loaded once before the hooks start; a file that does not load stops
    /// the run with its usage error before that).
    /// Withheld from `--hook-exec` programs and redacted from hook messages (`secrets`).
    static func keyVariables(
        _ options: RunOptions, deployments: RouterConfiguration? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> [String] {
        var names = ProviderRegistry.defaultAPIKeyVariables + [options.apiKeyEnv].compactMap { $0 }
        if let deployments { names += deployments.deployments.compactMap(\.apiKeyVariable) }
        // A PostgreSQL sink's password: libpq's own variable, and the one `password_env` names
        // (in the `--sink` URL or a `--sinks` file's options).
        names.append("PGPASSWORD")
        for sink in options.sinks where sink.kind == .postgres {
            let fromURL = URLComponents(string: sink.target)?.queryItems?.first { $0.name == "password_env" }?.value
            if let variable = sink.options["password_env"] ?? fromURL { names.append(variable) }
        }
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }

    /// The keys this run can see (`keyVariables`), for the one redaction of text that does not
    /// come from a provider adapter (hook messages). Placeholders (under 12 bytes) are ignored by the redactor.
    static func secrets(
        _ options: RunOptions, deployments: RouterConfiguration? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> [String] {
        keyVariables(options, deployments: deployments, environment: environment).compactMap { environment[$0]?.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    static func usageFailure(_ error: UsageError) -> Int32 {
        var text = "Error: \(StandardError.oneLine(error.message))\n"
        if let hint = error.hint { text += "Hint: \(StandardError.oneLine(hint))\n" }
        text += "Usage: \(Help.usage)\nSee 'pipeline --help'.\n"
        StandardError.write(text)
        return 2
    }

    /// Connections per host: one for every request the run can have in flight, commands ×
    /// calls per command (capped at 65,536): the client must never be what holds a run back.
    static func connections(_ options: RunOptions) -> Int {
        min(65_536, options.concurrency.multipliedReportingOverflow(by: EngineConfiguration().maxConcurrentCalls).partialValue)
    }

    static func mockConfiguration(_ options: RunOptions) -> MockConfiguration {
        var mock = MockConfiguration(
            latency: .milliseconds(options.mockLatencyMs), failingModels: Set(options.mockFailModels), capabilities: options.mockCapabilities,
            faults: options.mockFaults)
        mock.batchDelay = .milliseconds(options.mockBatchDelayMs)
        mock.batchDirectory = options.mockBatchDirectory
        return mock
    }

    static func makeProvider(_ options: RunOptions) -> Result<any GenerationCapability, UsageError> {
        let providerOptions = ProviderOptions(
            baseURL: options.baseURL, apiKeyEnvironmentVariable: options.apiKeyEnv, capabilities: options.capabilities,
            allowInsecureHTTP: options.allowInsecureHTTP, maxConnectionsPerHost: connections(options), caFile: options.caFile, mock: mockConfiguration(options))
        if let path = options.caFile {
            // Checked at start, like every path a flag names: a usage error, not a failure of every https request.
            do throws(UsageError) { _ = try PathArgument.check(path, option: "--ca-file", use: .read) } catch { return .failure(error) }
            if let problem = HTTPClient.caFileProblem(URL(fileURLWithPath: path)) {
                return .failure(UsageError(message: "option '--ca-file \(StandardError.oneLine(path))': \(problem)"))
            }
        }
        return ProviderRegistry.withHTTPProviders.make(options.provider, options: providerOptions).mapError { UsageError(message: $0.message) }
    }

    static func stream(_ options: RunOptions, validateOnly: Bool) async -> Int32 {
        if StandardStreams.stdinClosed {
            return usageFailure(UsageError(message: "cannot read stdin: it is closed; give commands on stdin, e.g. pipeline < commands.jsonl"))
        }
        if StandardStreams.stdoutClosed { return outputFailure("stdout is closed") }
        var resume: ResumeLedger?
        var startOnNewLine = false
        if let path = options.resume {
            let scan: Resume.Scan
            do throws(UsageError) { scan = try Resume.scan(path) } catch { return usageFailure(error) }
            resume = ResumeLedger(succeeded: scan.succeeded)
            if Resume.isSameFile(1, as: scan) {
                // `--resume out.jsonl >> out.jsonl` after a crash mid-write: the first record must not
                // continue the torn line. (With `>` instead of `>>` the shell emptied the file first.)
                startOnNewLine = scan.endsWithoutNewline
                if fcntl(1, F_GETFL) & O_APPEND == 0 && !options.quiet {
                    StandardError.write("Warning: stdout is the --resume file but not opened for appending (use >> to keep earlier results)\n")
                }
            }
        }
        // Every path a flag names, by one rule (PathArgument), before anything is opened.
        var statsTarget: PathArgument.Target?
        do throws(UsageError) {
            if let path = options.modelsFile { _ = try PathArgument.check(path, option: "--models", use: .read) }
            if let path = options.deploymentsFile { _ = try PathArgument.check(path, option: "--deployments", use: .read) }
            if !validateOnly {
                for sink in options.sinks where sink.kind == .jsonl || sink.kind == .sqlite {
                    do throws(UsageError) {
                        _ = try PathArgument.check(sink.target, option: "\(sink.origin) \(sink.kind.rawValue):", use: sink.kind == .sqlite ? .database : .append)
                    } catch {
                        throw UsageError(message: sink.withoutExpandedValues(error.message), hint: error.hint)
                    }
                }
                if let path = options.statsJSON { statsTarget = try PathArgument.check(path, option: "--stats-json", use: .replace) }
                if let path = options.responseCache { _ = try PathArgument.check(path, option: "--response-cache", use: .database) }
            }
        } catch {
            return usageFailure(error)
        }
        if let root = options.filesRoot {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
                return usageFailure(UsageError(message: "--files-root '\(root)' is not a directory"))
            }
        }
        // The model catalog: built in, with --models over it.
        var catalog = ModelCatalog.builtin
        if let path = options.modelsFile {
            switch CatalogFile.load(path, over: catalog) {
            case .success(let loaded): catalog = loaded
            case .failure(let problem): return usageFailure(UsageError(message: "option '--models \(path)': \(problem)"))
            }
        }
        // The deployments file (--deployments), loaded once: its key variables are withheld from
        // the hooks and redacted (`keyVariables`), and the router is made from it.
        var deployments: RouterConfiguration?
        if !validateOnly, let path = options.deploymentsFile {
            switch DeploymentsFile.load(path) {
            case .success(let loaded): deployments = loaded
            case .failure(let problem): return usageFailure(UsageError(message: "option '--deployments \(path)': \(problem)"))
            }
        }
        let ledger = CostLedger(limit: options.maxCostUSD)
        // Per-model metrics (--stats, --stats-json): a hook of the engine, only when asked for.
        let metrics = (options.stats || options.statsJSON != nil) ? MetricsCollector() : nil
        // Hooks run by other programs (--hook-exec), started once, stopped after the run.
        var execHooks: [ExecHook] = []
        if !validateOnly {
            let keys = Set(keyVariables(options, deployments: deployments))
            for program in options.hookPrograms {
                do throws(UsageError) { execHooks.append(
                        try ExecHook(
                            program: program, timeout: .milliseconds(Int(options.hookTimeoutSeconds * 1000)),
                            commandTimeout: options.timeoutSeconds.map { .milliseconds(Int($0 * 1000)) }, withheld: keys)) } catch {
                    for hook in execHooks { hook.finish() }
                    return usageFailure(error)
                }
            }
        }
        defer { for hook in execHooks { hook.finish() } }
        let quiet = options.quiet
        // Answers kept across runs (--response-cache): opened (and checked to be a cache) before any command.
        var responseCache: SQLiteResponseCache?
        if !validateOnly, let path = options.responseCache {
            do throws(SQLiteResponseCache.OpenError) {
                responseCache = try SQLiteResponseCache(
                    path: path, ttl: options.responseCacheTTL.map { .seconds($0) },
                    maxBytes: (options.responseCacheMaxMB ?? FlagLimits.defaultResponseCacheMB) << 20)
            } catch {
                return usageFailure(UsageError(message: "option '--response-cache': \(error.message)"))
            }
        }
        var router: Router?
        let mode: RunLoop.Mode
        let providerName: String
        if validateOnly {
            mode = .validate(catalog)
            providerName = options.provider
        } else {
            switch makeProvider(options) {
            case .failure(let error): return usageFailure(error)
            case .success(let provider):
                let rateLimit = (options.rateLimitRPM != nil || options.rateLimitTPM != nil)
                    ? RateConstraint(requestsPerMinute: options.rateLimitRPM, tokensPerMinute: options.rateLimitTPM) : nil
                var configuration = EngineConfiguration(
                    fileRoot: options.filesRoot, retryPolicy: RetryPolicy(maxAttempts: options.maxAttempts),
                    callTimeout: options.callTimeoutSeconds.map { .milliseconds(Int($0 * 1000)) },
                    commandTimeout: options.timeoutSeconds.map { .milliseconds(Int($0 * 1000)) }, rateLimit: rateLimit)
                configuration.catalog = catalog
                configuration.costLedger = ledger
                configuration.maxRepairs = options.maxRepairs
                configuration.responseCache = responseCache
                configuration.onUnknownModel = { model in
                    if !quiet { StandardError.write("pipeline: model '\(StandardError.oneLine(model))' is not in the model catalog: it runs unchecked and uncosted (describe it with --models FILE)\n") }
                }
                configuration.hooks = execHooks
                configuration.secrets = secrets(options, deployments: deployments)
                if let metrics { configuration.hooks.append(metrics) }
                if let path = options.deploymentsFile, let deployments {
                    switch DeploymentsReport.router(deployments, path: path, options: options) {
                    case .failure(let error): return usageFailure(error)
                    case .success(let made): router = made
                    }
                    configuration.router = router
                }
                // The flags' ranges are the configuration's (`ConfigurationLimits`): a refusal here is a usage error all the same.
                let engine: PipelineEngine
                do { engine = try PipelineEngine(provider: provider, configuration: configuration) } catch {
                    return usageFailure(UsageError(message: error.message))
                }
                mode = .execute(engine)
                providerName = provider.providerName
            }
        }

        let runID = options.runID ?? RunID.make()
        var sinks: SinkFeed?
        if !validateOnly {
            switch SinkFeed.make(options, runID: runID) {
            case .failure(let error): return usageFailure(error)
            case .success(let feed): sinks = feed
            }
        }

        let stats = Stats()
        var progress = Progress(stats: stats)
        if !validateOnly {
            progress.ledger = ledger
            progress.mockProvider = providerName == "mock"
        }
        progress.expected = options.expect
        progress.inputBytes = Progress.regularInputSize()
        let live = options.quiet ? nil : progress.live(terminal: StandardError.isTerminal, interval: options.progressInterval)
        let loop = RunLoop(
            mode: mode, providerName: providerName, concurrency: options.concurrency, unordered: options.unordered, eventsMode: options.events,
            resume: resume, startOnNewLine: startOnNewLine, stats: stats, sinks: sinks, reorderBufferBytes: options.reorderBufferMB << 20)
        let ending = await loop.run(interrupts: Signals.interrupts())
        // Bounded: a hung sink was abandoned at its timeout; what is still queued waits at most 2 × --sink-timeout.
        let sinkFailures = await sinks?.finish() ?? []
        // Writes the answers still pending; a failed write is an error (exit 1), the results stand.
        var cacheFailed = false
        if let responseCache {
            do { try await responseCache.finish() } catch {
                StandardError.write("Error: the response cache '\(responseCache.path)' could not keep every answer: \(error)\n")
                cacheFailed = true
            }
        }
        if let live {
            live.cancel()
            await live.value
        }
        if let outputError = ending.outputError {
            // No summary: it would count results that were computed but never written.
            return outputFailure(outputError, written: ending.linesWritten)
        }
        let interrupted = ending.interrupted
        if let readError = ending.readError {
            StandardError.write("Error: cannot read stdin: \(readError)\n")
            if stats.done == 0 { return 2 }
        }
        if let metrics, let path = options.statsJSON {
            // The rule again: the target may have changed during the run.
            let bytes = StatsReport.json(RunReport(metrics: metrics.snapshot()), ledger: validateOnly ? nil : ledger, deployments: router?.stats() ?? [])
            if let problem = PathArgument.writeWhole(bytes, to: path, option: "--stats-json", checked: statsTarget) {
                StandardError.write("Error: cannot write --stats-json: \(problem)\n")
                return 3
            }
        }
        if !options.quiet {
            StandardError.write(progress.summary())
            if sinks != nil {
                let n = sinkFailures.count
                StandardError.write("pipeline: run id \(runID); sinks: \(n == 0 ? "every result delivered" : "\(n) failure\(n == 1 ? "" : "s") (see above)")\n")
            }
        }
        // After the summary, so the table is the last thing on stderr and the summary stays
        // where scripts look for it, right after the progress line.
        if let metrics, options.stats { StandardError.write(StatsReport.table(RunReport(metrics: metrics.snapshot()))) }
        if let router, options.stats { StandardError.write(DeploymentsReport.table(router.stats())) }
        if interrupted { return 130 }
        return stats.failed.load(ordering: .relaxed) > 0 || cacheFailed ? 1 : 0
    }
}
