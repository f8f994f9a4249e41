import CommandPipeline

/// What the user asked for on the command line.
enum Invocation {
    case run(RunOptions)
    case validate(RunOptions)
    case capabilities(RunOptions)
    case help
    case version
}

/// Options of `run` (and the subset `validate` and `capabilities` use).
struct RunOptions {
    var provider = "mock"
    var baseURL: String?
    var apiKeyEnv: String?
    var allowInsecureHTTP = false
    var concurrency = RunOptions.defaultConcurrency
    var unordered = false
    var quiet = false
    var resume: String?
    var filesRoot: String?
    var timeoutSeconds: Double?
    var callTimeoutSeconds: Double?
    var maxAttempts = RetryPolicy().maxAttempts
    var mockFaults: MockFaultPlan?
    var rateLimitRPM: Int?
    var rateLimitTPM: Int?
    var mockLatencyMs = 0
    var mockFailModels: [String] = []
    var mockCapabilities: Set<ProviderCapability> = Set(ProviderCapability.allCases)
    /// Capabilities declared for a real provider's server (`--capabilities`); nil: the provider's default.
    var capabilities: Set<ProviderCapability>?

    static let defaultConcurrency = 64
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
        Spec(name: "--concurrency", takesValue: true, subcommands: runLike),
        Spec(name: "--unordered", takesValue: false, subcommands: runLike),
        Spec(name: "--quiet", takesValue: false, subcommands: runLike),
        Spec(name: "--resume", takesValue: true, subcommands: ["run"]),
        Spec(name: "--files-root", takesValue: true, subcommands: runLike),
        Spec(name: "--timeout", takesValue: true, subcommands: ["run"]),
        Spec(name: "--call-timeout", takesValue: true, subcommands: ["run"]),
        Spec(name: "--max-attempts", takesValue: true, subcommands: ["run"]),
        Spec(name: "--mock-faults", takesValue: true, subcommands: ["run"]),
        Spec(name: "--rate-limit-rpm", takesValue: true, subcommands: ["run"]),
        Spec(name: "--rate-limit-tpm", takesValue: true, subcommands: ["run"]),
        Spec(name: "--mock-latency-ms", takesValue: true, subcommands: ["run"]),
        Spec(name: "--mock-fail-model", takesValue: true, subcommands: ["run"]),
        Spec(name: "--mock-capabilities", takesValue: true, subcommands: all),
        Spec(name: "--capabilities", takesValue: true, subcommands: all),
    ]

    static func parse(_ arguments: [String]) throws(UsageError) -> Invocation {
        var rest = arguments[...]
        if rest.contains("--help") || rest.contains("-h") { return .help }
        if rest.contains("--version") { return .version }
        var subcommand = "run"
        if let first = rest.first, !first.hasPrefix("-") {
            guard all.contains(first) else {
                throw UsageError(message: "unknown subcommand '\(first)'", hint: suggestion(first, among: Array(all)))
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
        case "--concurrency": options.concurrency = try positiveInt(name, value)
        case "--unordered": options.unordered = true
        case "--quiet": options.quiet = true
        case "--resume": options.resume = value
        case "--files-root": options.filesRoot = value
        case "--timeout": options.timeoutSeconds = try seconds(name, value)
        case "--call-timeout": options.callTimeoutSeconds = try seconds(name, value)
        case "--max-attempts": options.maxAttempts = try positiveInt(name, value)
        case "--capabilities":
            switch ProviderCapability.parseList(value) {
            case .success(let set): options.capabilities = set.union([.generation])
            case .failure(let error): throw UsageError(message: "option '--capabilities': \(error.message)")
            }
        case "--mock-faults":
            switch MockFaultPlan.parse(value) {
            case .success(let plan): options.mockFaults = plan
            case .failure(let error): throw UsageError(message: "option '--mock-faults': \(error.message)")
            }
        case "--rate-limit-rpm": options.rateLimitRPM = try positiveInt(name, value)
        case "--rate-limit-tpm": options.rateLimitTPM = try positiveInt(name, value)
        case "--mock-latency-ms":
            guard let ms = Int(value), ms >= 0 else { throw UsageError(message: "option '--mock-latency-ms' needs a whole number ≥ 0, got '\(value)'") }
            options.mockLatencyMs = ms
        case "--mock-fail-model": options.mockFailModels.append(value)
        case "--mock-capabilities":
            switch ProviderCapability.parseList(value) {
            case .success(let set): options.mockCapabilities = set.union([.generation])
            case .failure(let error): throw UsageError(message: "option '--mock-capabilities': \(error.message)")
            }
        default: break
        }
    }

    private static func seconds(_ name: String, _ value: String) throws(UsageError) -> Double {
        guard let seconds = Double(value), seconds > 0, seconds.isFinite else {
            throw UsageError(message: "option '\(name)' needs a positive number of seconds, got '\(value)'")
        }
        return seconds
    }

    private static func positiveInt(_ name: String, _ value: String) throws(UsageError) -> Int {
        guard let n = Int(value), n >= 1 else { throw UsageError(message: "option '\(name)' needs a whole number ≥ 1, got '\(value)'") }
        return n
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
