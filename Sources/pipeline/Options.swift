import CommandPipeline

/// What the user asked for on the command line.
enum Invocation {
    case run(RunOptions)
    case validate(RunOptions)
    case capabilities(RunOptions)
    /// `pipeline batch …` (Batch/BatchOptions.swift).
    case batch(BatchInvocation)
    /// `pipeline report RESULTS…` (Report.swift).
    case report(ReportOptions)
    /// `pipeline cache stats|prune PATH` (CacheCommand.swift).
    case cache(CacheInvocation)
    case help
    case version
}

/// Options of `run` (and the subset `validate` and `capabilities` use).
struct RunOptions {
    var provider = "mock"
    var baseURL: String?
    var apiKeyEnv: String?
    var allowInsecureHTTP = false
    /// A PEM file of CA certificates trusted for https besides the system's store (`--ca-file`).
    var caFile: String?
    var concurrency = RunOptions.defaultConcurrency
    var unordered = false
    /// Write each command's event stream instead of one result line (`--events`).
    var events = false
    var quiet = false
    /// Commands the input holds, for the progress line's total (`--expect`); nil: from the input.
    var expect: Int?
    /// Seconds between progress lines when stderr is not a terminal (`--progress-interval`); 0: none.
    var progressInterval: Double = 30
    var resume: String?
    var filesRoot: String?
    var timeoutSeconds: Double?
    var callTimeoutSeconds: Double?
    var maxAttempts = RetryPolicy().maxAttempts
    /// Re-asks of an answer that breaks its JSON response_format (`--max-repairs`).
    var maxRepairs = EngineConfiguration().maxRepairs
    var mockFaults: MockFaultPlan?
    var rateLimitRPM: Int?
    var rateLimitTPM: Int?
    var mockLatencyMs = 0
    var mockFailModels: [String] = []
    var mockCapabilities: Set<ProviderCapability> = Set(ProviderCapability.allCases)
    /// Capabilities declared for a real provider's server (`--capabilities`); nil: the provider's default.
    var capabilities: Set<ProviderCapability>?
    /// Result sinks (`--sink`, repeatable), their per-call timeout, and the run id they see.
    var sinks: [SinkSpec] = []
    var sinkTimeoutSeconds: Double = 30
    var runID: String?
    /// A user model catalog (`--models FILE`) over the built-in one.
    var modelsFile: String?
    /// Deployments of logical models (`--deployments FILE`, `Design/routing.md`).
    var deploymentsFile: String?
    /// Spending limit in US dollars (`--max-cost`).
    var maxCostUSD: Double?
    /// Per-model metrics at the end of the run: a table on stderr (`--stats`), JSON in a file (`--stats-json`).
    var stats = false
    var statsJSON: String?
    /// A hook run by another program (`--hook-exec PROGRAM`, repeatable, in order).
    var hookPrograms: [String] = []
    /// How long a `--hook-exec` program may take to read a question and answer it (`--hook-timeout`).
    var hookTimeoutSeconds: Double = 30
    /// Mock batch jobs: how long each runs, and where they are kept (`pipeline batch`).
    var mockBatchDelayMs = 0
    var mockBatchDirectory: String?

    /// Answers kept across runs in a SQLite file (`--response-cache`), fresh for
    /// `--response-cache-ttl` seconds (nil: forever), at most `--response-cache-max-mb` MiB of them.
    var responseCache: String?
    var responseCacheTTL: Int?
    var responseCacheMaxMB: Int?

    /// Ordered output's reorder buffer, in MiB (`--reorder-buffer-mb`).
    var reorderBufferMB = RunOptions.defaultReorderBufferMB

    static let defaultConcurrency = 64
    static let defaultReorderBufferMB = 64
}

/// The documented range of every numeric flag (see `Help.text` and Design/wire-format.md).
/// A value outside its range is a usage error naming the flag and the range, so nothing
/// computed from a flag (windows of `4 × concurrency`, milliseconds of a timeout) can overflow.
enum FlagLimits {
    /// A flag's decimal number: digits with at most one `.` (`30`, `0.5`, `.5`, `2.`) and
    /// nothing else — no sign, exponent, hex (`0x10`), `inf`, `nan`, spaces or underscores,
    /// which `Double(_:)` would take. Nil for any other form.
    static func decimal(_ text: String) -> Double? {
        var digits = 0, dots = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits += 1
            case UInt8(ascii: "."): dots += 1
            default: return nil
            }
        }
        guard digits > 0, dots <= 1, text.utf8.count <= 64 else { return nil }
        return Double(text)
    }

    static let concurrency = 1...10_000
    /// `--reorder-buffer-mb`: 1 MiB to 64 GiB.
    static let reorderBufferMB = 1...65_536
    /// `--timeout`, `--call-timeout`: 1 ms to one week.
    /// Timeouts in seconds: the library's `ConfigurationLimits.timeout` (1 ms to one week), as a number.
    static let seconds: ClosedRange<Double> = seconds(ConfigurationLimits.timeout.lowerBound)...seconds(ConfigurationLimits.timeout.upperBound)
    private static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    static let maxAttempts = ConfigurationLimits.maxAttempts
    static let requestsPerMinute = ConfigurationLimits.requestsPerMinute
    static let tokensPerMinute = ConfigurationLimits.tokensPerMinute
    /// `--mock-latency-ms` and the durations of `--mock-faults`: up to one hour.
    static let milliseconds = 0...3_600_000
    /// The `@PRIORITY` of `--sink`.
    static let sinkPriority = -1_000_000...1_000_000
    /// `--max-cost`: up to a million dollars, in dollars.
    static let maxCost: ClosedRange<Double> = 0...1_000_000
    /// `--expect`: commands the input holds, up to 10^12.
    static let expect = 1...1_000_000_000_000
    /// `--progress-interval`: 0 (off) to one day, in seconds.
    static let progressInterval: ClosedRange<Double> = 0...86_400
    /// `--response-cache-ttl`, `cache prune --older-than`: 1 s to 100 years, in whole seconds.
    static let responseCacheSeconds = 1...3_155_760_000
    /// `--response-cache-max-mb`, `cache prune --max-mb`: 1 MiB to 1 TiB.
    static let responseCacheMB = 1...1_048_576
    /// The response cache's size bound when `--response-cache-max-mb` is not given.
    static let defaultResponseCacheMB = 1024
}

/// A command line that cannot be run: exit status 2, message on stderr.
struct UsageError: Error {
    var message: String
    var hint: String?
}

/// Parses arguments by hand: `--flag value` and `--flag=value`, subcommand first.
enum ArgumentParser {
    struct Spec {
        var name: String
        var takesValue: Bool
        var subcommands: Set<String>
    }

    static let runLike: Set<String> = ["run", "validate"]
    static let all: Set<String> = ["run", "validate", "capabilities"]
    static let specs: [Spec] = [
        Spec(name: "--provider", takesValue: true, subcommands: all),
        Spec(name: "--base-url", takesValue: true, subcommands: all),
        Spec(name: "--api-key-env", takesValue: true, subcommands: all),
        Spec(name: "--allow-insecure-http", takesValue: false, subcommands: all),
        Spec(name: "--ca-file", takesValue: true, subcommands: all),
        Spec(name: "--concurrency", takesValue: true, subcommands: runLike),
        Spec(name: "--reorder-buffer-mb", takesValue: true, subcommands: runLike),
        Spec(name: "--unordered", takesValue: false, subcommands: runLike),
        Spec(name: "--events", takesValue: false, subcommands: ["run"]),
        Spec(name: "--quiet", takesValue: false, subcommands: runLike),
        Spec(name: "--expect", takesValue: true, subcommands: runLike),
        Spec(name: "--progress-interval", takesValue: true, subcommands: runLike),
        Spec(name: "--resume", takesValue: true, subcommands: ["run"]),
        Spec(name: "--files-root", takesValue: true, subcommands: runLike),
        Spec(name: "--timeout", takesValue: true, subcommands: ["run"]),
        Spec(name: "--call-timeout", takesValue: true, subcommands: ["run"]),
        Spec(name: "--max-attempts", takesValue: true, subcommands: ["run"]),
        Spec(name: "--max-repairs", takesValue: true, subcommands: ["run"]),
        Spec(name: "--mock-faults", takesValue: true, subcommands: ["run"]),
        Spec(name: "--rate-limit-rpm", takesValue: true, subcommands: ["run"]),
        Spec(name: "--rate-limit-tpm", takesValue: true, subcommands: ["run"]),
        Spec(name: "--mock-latency-ms", takesValue: true, subcommands: ["run"]),
        Spec(name: "--mock-fail-model", takesValue: true, subcommands: ["run"]),
        Spec(name: "--mock-capabilities", takesValue: true, subcommands: all),
        Spec(name: "--capabilities", takesValue: true, subcommands: all),
        Spec(name: "--sink", takesValue: true, subcommands: ["run"]),
        Spec(name: "--sinks", takesValue: true, subcommands: ["run"]),
        Spec(name: "--sink-timeout", takesValue: true, subcommands: ["run"]),
        Spec(name: "--run-id", takesValue: true, subcommands: ["run"]),
        Spec(name: "--models", takesValue: true, subcommands: ["run", "validate"]),
        Spec(name: "--deployments", takesValue: true, subcommands: ["run"]),
        Spec(name: "--max-cost", takesValue: true, subcommands: ["run"]),
        Spec(name: "--stats", takesValue: false, subcommands: ["run"]),
        Spec(name: "--hook-exec", takesValue: true, subcommands: ["run"]),
        Spec(name: "--hook-timeout", takesValue: true, subcommands: ["run"]),
        Spec(name: "--stats-json", takesValue: true, subcommands: ["run"]),
        Spec(name: "--response-cache", takesValue: true, subcommands: ["run"]),
        Spec(name: "--response-cache-ttl", takesValue: true, subcommands: ["run"]),
        Spec(name: "--response-cache-max-mb", takesValue: true, subcommands: ["run"]),
    ]

    static func parse(_ arguments: [String]) throws(UsageError) -> Invocation {
        var rest = arguments[...]
        if rest.first == "batch" {
            if rest.contains("--help") || rest.contains("-h") { return .batch(BatchInvocation(action: .help, jobFile: "")) }
            return .batch(try BatchInvocation.parse(rest.dropFirst()))
        }
        if rest.first == "cache" {
            if rest.contains("--help") || rest.contains("-h") { return .help }
            return .cache(try CacheInvocation.parse(rest.dropFirst()))
        }
        if rest.first == "report" {
            if rest.contains("--help") || rest.contains("-h") { return .help }
            return .report(try ReportOptions.parse(rest.dropFirst()))
        }
        if rest.contains("--help") || rest.contains("-h") { return .help }
        if rest.contains("--version") { return .version }
        var subcommand = "run"
        if let first = rest.first, !first.hasPrefix("-") {
            guard all.contains(first) else {
                throw UsageError(message: "unknown subcommand '\(first)'", hint: suggestion(first, among: Array(all) + ["batch", "report", "cache"]))
            }
            subcommand = first
            rest = rest.dropFirst()
        }
        var options = RunOptions()
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--") else {
                throw UsageError(message: "unexpected argument '\(argument)'; commands are read from stdin, e.g. pipeline < commands.jsonl")
            }
            var name = argument
            var inlineValue: String?
            if let eq = argument.firstIndex(of: "=") {
                name = String(argument[..<eq])
                inlineValue = String(argument[argument.index(after: eq)...])
            }
            guard let spec = specs.first(where: { $0.name == name }) else {
                throw UsageError(message: "unknown option '\(name)'", hint: suggestion(name, among: specs.map(\.name)))
            }
            guard spec.subcommands.contains(subcommand) else {
                throw UsageError(message: "option '\(name)' does not apply to '\(subcommand)'")
            }
            var value = ""
            if spec.takesValue {
                if let inlineValue {
                    value = inlineValue
                } else if let next = rest.popFirst(), !next.hasPrefix("--") {
                    value = next
                } else {
                    throw UsageError(message: "option '\(name)' needs a value")
                }
            } else if inlineValue != nil {
                throw UsageError(message: "option '\(name)' takes no value")
            }
            try apply(name, value, to: &options)
        }
        if options.responseCache == nil, options.responseCacheTTL != nil || options.responseCacheMaxMB != nil {
            let flag = options.responseCacheTTL != nil ? "--response-cache-ttl" : "--response-cache-max-mb"
            throw UsageError(message: "option '\(flag)' needs --response-cache PATH (the cache file it applies to)")
        }
        switch subcommand {
        case "validate": return .validate(options)
        case "capabilities": return .capabilities(options)
        default: return .run(options)
        }
    }

    private static func apply(_ name: String, _ value: String, to options: inout RunOptions) throws(UsageError) {
        switch name {
        case "--provider": options.provider = value
        case "--base-url": options.baseURL = value
        case "--api-key-env": options.apiKeyEnv = value
        case "--allow-insecure-http": options.allowInsecureHTTP = true
        case "--ca-file":
            guard !value.isEmpty else { throw UsageError(message: "option '--ca-file' needs a file name (a PEM file of CA certificates)") }
            options.caFile = value
        case "--concurrency": options.concurrency = try integer(name, value, in: FlagLimits.concurrency)
        case "--max-repairs": options.maxRepairs = try integer(name, value, in: Limits.maxRepairs)
        case "--reorder-buffer-mb": options.reorderBufferMB = try integer(name, value, in: FlagLimits.reorderBufferMB)
        case "--unordered": options.unordered = true
        case "--events": options.events = true
        case "--quiet": options.quiet = true
        case "--expect": options.expect = try integer(name, value, in: FlagLimits.expect)
        case "--progress-interval":
            let range = FlagLimits.progressInterval
            guard let seconds = Double(value), seconds.isFinite, range.contains(seconds) else {
                throw UsageError(message: "option '--progress-interval' needs a number of seconds from 0 (off) to \(Int(range.upperBound)) (one day), got '\(value)'")
            }
            options.progressInterval = seconds
        case "--files-root": options.filesRoot = value
        case "--resume":
            guard !value.isEmpty else { throw UsageError(message: "option '--resume' needs a file name") }
            options.resume = value
        case "--timeout": options.timeoutSeconds = try seconds(name, value)
        case "--call-timeout": options.callTimeoutSeconds = try seconds(name, value)
        case "--max-attempts": options.maxAttempts = try integer(name, value, in: FlagLimits.maxAttempts)
        case "--capabilities":
            switch ProviderCapability.parseList(value) {
            case .success(let set): options.capabilities = set.union([.generation])
            case .failure(let error): throw UsageError(message: "option '--capabilities': \(error.message)")
            }
        case "--mock-faults":
            try checkFaultMilliseconds(value)
            switch MockFaultPlan.parse(value) {
            case .success(let plan): options.mockFaults = plan
            case .failure(let error): throw UsageError(message: "option '--mock-faults': \(error.message)")
            }
        case "--rate-limit-rpm": options.rateLimitRPM = try integer(name, value, in: FlagLimits.requestsPerMinute)
        case "--rate-limit-tpm": options.rateLimitTPM = try integer(name, value, in: FlagLimits.tokensPerMinute)
        case "--mock-latency-ms": options.mockLatencyMs = try integer(name, value, in: FlagLimits.milliseconds)
        case "--mock-fail-model": options.mockFailModels.append(value)
        case "--mock-capabilities":
            switch ProviderCapability.parseList(value) {
            case .success(let set): options.mockCapabilities = set.union([.generation])
            case .failure(let error): throw UsageError(message: "option '--mock-capabilities': \(error.message)")
            }
        case "--sink": options.sinks.append(try SinkSpec.parse(value))
        case "--sinks":
            guard !value.isEmpty else { throw UsageError(message: "option '--sinks' needs a file name") }
            options.sinks += try SinksFile.load(value)
        case "--sink-timeout": options.sinkTimeoutSeconds = try seconds(name, value)
        case "--run-id":
            if let problem = RunID.problem(value) { throw UsageError(message: "option '--run-id': \(problem)") }
            options.runID = value
        case "--deployments":
            guard !value.isEmpty else { throw UsageError(message: "option '--deployments' needs a file name") }
            options.deploymentsFile = value
        case "--models":
            guard !value.isEmpty else { throw UsageError(message: "option '--models' needs a file name") }
            options.modelsFile = value
        case "--max-cost":
            let range = FlagLimits.maxCost
            guard let usd = FlagLimits.decimal(value), usd.isFinite, range.contains(usd) else {
                throw UsageError(message: "option '--max-cost' needs an amount in US dollars from 0 to \(Int(range.upperBound)), got '\(value)'")
            }
            options.maxCostUSD = usd
        case "--stats": options.stats = true
        case "--hook-timeout": options.hookTimeoutSeconds = try seconds(name, value)
        case "--hook-exec":
            guard !value.isEmpty else { throw UsageError(message: "option '--hook-exec' needs a program") }
            options.hookPrograms.append(value)
        case "--stats-json":
            guard !value.isEmpty else { throw UsageError(message: "option '--stats-json' needs a file name") }
            options.statsJSON = value
        case "--response-cache":
            guard !value.isEmpty else { throw UsageError(message: "option '--response-cache' needs a file name") }
            options.responseCache = value
        case "--response-cache-ttl": options.responseCacheTTL = try integer(name, value, in: FlagLimits.responseCacheSeconds)
        case "--response-cache-max-mb": options.responseCacheMaxMB = try integer(name, value, in: FlagLimits.responseCacheMB)
        default: break
        }
    }

    /// Seconds as a decimal number within `FlagLimits.seconds` (1 ms to one week), so converting
    /// them to whole milliseconds can never overflow.
    private static func seconds(_ name: String, _ value: String) throws(UsageError) -> Double {
        let range = FlagLimits.seconds
        guard let seconds = FlagLimits.decimal(value), seconds.isFinite, range.contains(seconds) else {
            throw UsageError(message: "option '\(name)' needs a number of seconds from 0.001 to \(Int(range.upperBound)) (one week), got '\(value)'")
        }
        return seconds
    }

    /// A whole number within `range`; anything else (not a number, out of range, too big for
    /// an Int) is a usage error naming the flag and the range.
    static func integer(_ name: String, _ value: String, in range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let n = Int(value), range.contains(n) else {
            throw UsageError(message: "option '\(name)' needs a whole number from \(range.lowerBound) to \(range.upperBound), got '\(value)'")
        }
        return n
    }

    /// `--mock-faults` durations (`retry_after_ms`, `jitter_ms`) within `FlagLimits.milliseconds`;
    /// the rest of the spec is checked by `MockFaultPlan.parse`.
    private static func checkFaultMilliseconds(_ spec: String) throws(UsageError) {
        for item in spec.split(separator: ",") {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, pair[0] == "retry_after_ms" || pair[0] == "jitter_ms" else { continue }
            let range = FlagLimits.milliseconds
            guard let n = Int(pair[1]), range.contains(n) else {
                throw UsageError(message: "option '--mock-faults': \(pair[0]) needs a whole number of milliseconds from \(range.lowerBound) to \(range.upperBound), got '\(pair[1])'")
            }
        }
    }

    /// "did you mean …?" for a near miss (edit distance ≤ 2).
    static func suggestion(_ word: String, among candidates: [String]) -> String? {
        let best = candidates.map { ($0, distance(word, $0)) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= 2 else { return nil }
        return "did you mean '\(best.0)'?"
    }

    private static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}
