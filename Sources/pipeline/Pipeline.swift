import CommandPipeline
import CommandPipelineHTTP
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
            print(Help.text)
            return 0
        case .version:
            print(Help.version)
            return 0
        case .capabilities(let options):
            switch makeProvider(options) {
            case .failure(let error): return usageFailure(error)
            case .success(let provider):
                let capabilities = ProviderCapability.probe(provider).sorted()
                let record: JSONValue = ["provider": .string(provider.providerName), "capabilities": .array(capabilities.map { .string($0.rawValue) })]
                print(JSONSerializer.serialize(record))
                return 0
            }
        case .validate(let options):
            return await stream(options, validateOnly: true)
        case .run(let options):
            return await stream(options, validateOnly: false)
        }
    }

    static func usageFailure(_ error: UsageError) -> Int32 {
        var text = "Error: \(error.message)\n"
        if let hint = error.hint { text += "Hint: \(hint)\n" }
        text += "Usage: \(Help.usage)\nSee 'pipeline --help'.\n"
        StandardError.write(text)
        return 2
    }

    static func makeProvider(_ options: RunOptions) -> Result<any GenerationCapability, UsageError> {
        let mock = MockConfiguration(
            latency: .milliseconds(options.mockLatencyMs), failingModels: Set(options.mockFailModels), capabilities: options.mockCapabilities,
            faults: options.mockFaults)
        let providerOptions = ProviderOptions(
            baseURL: options.baseURL, apiKeyEnvironmentVariable: options.apiKeyEnv, capabilities: options.capabilities,
            allowInsecureHTTP: options.allowInsecureHTTP, mock: mock)
        return ProviderRegistry.withHTTPProviders.make(options.provider, options: providerOptions).mapError { UsageError(message: $0.message) }
    }

    static func stream(_ options: RunOptions, validateOnly: Bool) async -> Int32 {
        var resumeIDs: Set<String> = []
        if let path = options.resume {
            do throws(UsageError) { resumeIDs = try Resume.succeededIDs(in: path) } catch { return usageFailure(error) }
        }
        var files = FileResolver()
        if let root = options.filesRoot {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
                return usageFailure(UsageError(message: "--files-root '\(root)' is not a directory"))
            }
            files = FileResolver(confinedTo: root)
        }
        let mode: RunLoop.Mode
        let providerName: String
        if validateOnly {
            mode = .validate
            providerName = options.provider
        } else {
            switch makeProvider(options) {
            case .failure(let error): return usageFailure(error)
            case .success(let provider):
                let rateLimit = (options.rateLimitRPM != nil || options.rateLimitTPM != nil)
                    ? RateConstraint(requestsPerMinute: options.rateLimitRPM, tokensPerMinute: options.rateLimitTPM) : nil
                let configuration = EngineConfiguration(
                    files: files, retryPolicy: RetryPolicy(maxAttempts: options.maxAttempts),
                    callTimeout: options.callTimeoutSeconds.map { .milliseconds(Int($0 * 1000)) },
                    commandTimeout: options.timeoutSeconds.map { .milliseconds(Int($0 * 1000)) }, rateLimit: rateLimit)
                let engine = PipelineEngine(provider: provider, configuration: configuration)
                mode = .execute(engine)
                providerName = provider.providerName
            }
        }

        let stats = Stats()
        let progress = Progress(stats: stats)
        let live = (!options.quiet && StandardError.isTerminal) ? progress.live() : nil
        let loop = RunLoop(
            mode: mode, providerName: providerName, concurrency: options.concurrency, unordered: options.unordered,
            resumeIDs: resumeIDs, stats: stats)
        let (interrupted, readError) = await loop.run(interrupts: Signals.interrupts())
        if let live {
            live.cancel()
            await live.value
        }
        if let readError {
            StandardError.write("Error: cannot read stdin: \(readError)\n")
            if stats.done == 0 { return 2 }
        }
        if !options.quiet { StandardError.write(progress.summary()) }
        if interrupted { return 130 }
        return stats.failed.load(ordering: .relaxed) > 0 ? 1 : 0
    }
}
