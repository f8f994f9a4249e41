import CommandPipeline

/// `pipeline batch submit|status|collect|retry|cancel`, as parsed.
struct BatchInvocation {
    enum Action: String, CaseIterable {
        case submit, status, collect, retry, cancel
        /// `pipeline batch --help`.
        case help
    }

    var action: Action
    var jobFile: String
    /// Provider and endpoint options (the provider-only ones are submit's; the others read them
    /// from the job file, checked against these).
    var run = RunOptions()
    /// `--provider` was given: then it must be the job file's provider. Without it (and without
    /// `--api-key-env`) a job file for a provider that reads a key is refused (the batch key rule).
    var providerGiven = false
    /// Requests per job, at most the provider's limit (submit).
    var maxRequestsPerJob: Int?
    /// `status`/`collect`: poll until every job has ended.
    var wait = false
    var pollSeconds: Double = 30
    /// `--wait` gives up after this long (exit status 4).
    var waitTimeoutSeconds: Double?
    var quiet = false
    /// `collect`: a user model catalog (`--models FILE`) over the built-in one, for batch prices.
    var modelsFile: String?

    static let help = """
    pipeline batch — run commands through the provider's batch service (about half the price, results within 24 h)

    Usage:
      pipeline batch submit --job JOBFILE [options] < commands.jsonl
      pipeline batch status JOBFILE [--wait] [--poll-seconds S] [--timeout S] [endpoint options]
      pipeline batch collect JOBFILE [--wait] [--poll-seconds S] [--timeout S] [--models FILE] [endpoint options] > results.jsonl
      pipeline batch retry JOBFILE [endpoint options]
      pipeline batch cancel JOBFILE [endpoint options]

    submit validates every command (the same errors as run), builds the requests as run does,
    splits them into jobs within the provider's limits and submits them, recording each in
    JOBFILE (atomically, before and after each submission). Re-running submit with the same
    input continues where it stopped and never submits a job twice.
    collect writes one result line per command, in input order, in the schema of run
    (telemetry has "batch": true and "batch_job"); failed, expired and cancelled requests are
    failed records. Collecting twice gives the same lines. Each priced response, and the
    command, carry their "cost" at the catalog's batch prices (the model's batch discount off
    every price), and the closing line on stderr gives the total.
    retry sends again, as new jobs recorded in JOBFILE, the requests of ended jobs that failed
    or expired (not the cancelled ones); it needs every job ended, and prints how many it sent
    (none when nothing failed: no job is submitted). collect then takes each request's latest
    successful answer: still one line per command, in input order. Safe to re-run, like submit.

    Options of submit:
      --job JOBFILE              the job file to create or continue (required)
      --provider NAME            mock, openai, gemini, anthropic (default mock)
      --base-url URL, --api-key-env VAR, --allow-insecure-http, --capabilities LIST   as for run
      --max-requests-per-job N   split into jobs of at most N requests (1 to the provider's limit)
      --mock-batch-delay-ms N    mock: how long a job runs (default 0)
      --mock-fail-model NAME, --mock-faults SPEC, --mock-capabilities LIST   mock, as for run
      --quiet                    no progress on stderr
    Endpoint options (every action): --provider NAME, --base-url URL, --api-key-env VAR, --allow-insecure-http, --ca-file FILE.
    The job file records them, but never decides where the key goes: status, collect, retry,
    cancel and a re-run of submit must be given the same --base-url and --api-key-env as the submit
    that made it (none, when it used the provider's defaults), and --allow-insecure-http again
    if it was used; a job file naming another endpoint or key variable is refused (exit 2).
    Without --api-key-env they must name the job file's provider with --provider (its default key
    variable is what is sent); a job file of another provider is refused (exit 2). mock reads no key.
    Options of status and collect:
      --wait                     poll until every job has ended
      --poll-seconds S           time between polls (0.05 to 3600, default 30)
      --timeout S                give up waiting after S seconds (exit status 4)
    Options of collect:
      --models FILE              model catalog over the built-in one, as for run (batch prices)

    Exit status: 0 done (collect: every command succeeded), 1 collect: some command failed,
    2 usage error or unusable job file, 3 output or job file could not be written,
    4 not finished (jobs still running, or submit/retry stopped at a job it cannot reconcile), 130 interrupted.
    See Design/batch.md.
    """

    static func parse(_ arguments: ArraySlice<String>) throws(UsageError) -> BatchInvocation {
        var rest = arguments
        guard let first = rest.popFirst() else {
            throw UsageError(message: "'batch' needs an action: submit, status, collect, retry or cancel")
        }
        guard let action = Action(rawValue: first), action != .help else {
            throw UsageError(message: "unknown batch action '\(first)'", hint: ArgumentParser.suggestion(first, among: ["submit", "status", "collect", "retry", "cancel"]))
        }
        var invocation = BatchInvocation(action: action, jobFile: "")
        var jobFile: String?
        let submitOnly: Set<String> = [
            "--job", "--capabilities", "--max-requests-per-job",
            "--mock-batch-delay-ms", "--mock-fail-model", "--mock-faults", "--mock-capabilities",
        ]
        // Where the key goes: given by the operator on every action, never by the job file alone.
        let endpoint: Set<String> = ["--provider", "--base-url", "--api-key-env", "--allow-insecure-http", "--ca-file"]
        let waiting: Set<String> = ["--wait", "--poll-seconds", "--timeout"]
        let collectOnly: Set<String> = ["--models"]
        let flags: Set<String> = ["--allow-insecure-http", "--wait", "--quiet"]
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--") else {
                guard action != .submit, jobFile == nil else {
                    throw UsageError(message: "unexpected argument '\(argument)'" + (action == .submit ? "; give the job file with --job and commands on stdin" : ""))
                }
                jobFile = argument
                continue
            }
            var name = argument
            var inline: String?
            if let eq = argument.firstIndex(of: "=") {
                name = String(argument[..<eq])
                inline = String(argument[argument.index(after: eq)...])
            }
            let known = submitOnly.union(endpoint).union(waiting).union(collectOnly).union(["--quiet"])
            guard known.contains(name) else {
                throw UsageError(message: "unknown option '\(name)' for 'batch \(action.rawValue)'", hint: ArgumentParser.suggestion(name, among: Array(known)))
            }
            if submitOnly.contains(name) && action != .submit || waiting.contains(name) && action != .status && action != .collect
                || collectOnly.contains(name) && action != .collect {
                throw UsageError(message: "option '\(name)' does not apply to 'batch \(action.rawValue)'")
            }
            var value = ""
            if flags.contains(name) {
                if inline != nil { throw UsageError(message: "option '\(name)' takes no value") }
            } else if let inline {
                value = inline
            } else if let next = rest.popFirst(), !next.hasPrefix("--") {
                value = next
            } else {
                throw UsageError(message: "option '\(name)' needs a value")
            }
            switch name {
            case "--job":
                guard !value.isEmpty else { throw UsageError(message: "option '--job' needs a file name") }
                jobFile = value
            case "--allow-insecure-http": invocation.run.allowInsecureHTTP = true
            case "--wait": invocation.wait = true
            case "--quiet": invocation.quiet = true
            case "--models":
                guard !value.isEmpty else { throw UsageError(message: "option '--models' needs a file name") }
                invocation.modelsFile = value
            case "--poll-seconds": invocation.pollSeconds = try seconds(name, value, 0.05...3600)
            case "--timeout": invocation.waitTimeoutSeconds = try seconds(name, value, 0.05...604_800)
            case "--max-requests-per-job":
                guard let n = Int(value), (1...1_000_000).contains(n) else {
                    throw UsageError(message: "option '--max-requests-per-job' needs a whole number from 1 to 1000000, got '\(value)'")
                }
                invocation.maxRequestsPerJob = n
            case "--mock-batch-delay-ms":
                guard let n = Int(value), FlagLimits.milliseconds.contains(n) else {
                    throw UsageError(message: "option '--mock-batch-delay-ms' needs a whole number from 0 to \(FlagLimits.milliseconds.upperBound), got '\(value)'")
                }
                invocation.run.mockBatchDelayMs = n
            default:
                // The provider options of run, parsed by run's own rules.
                let parsed = try ArgumentParser.parse(["run", "\(name)=\(value)"])
                guard case .run(let options) = parsed else { continue }
                invocation.run.merge(name, from: options)
                if name == "--provider" { invocation.providerGiven = true }
            }
        }
        guard let jobFile else {
            throw UsageError(message: action == .submit ? "'batch submit' needs --job JOBFILE" : "'batch \(action.rawValue)' needs the job file, e.g. pipeline batch \(action.rawValue) job.json")
        }
        invocation.jobFile = jobFile
        return invocation
    }

    private static func seconds(_ name: String, _ value: String, _ range: ClosedRange<Double>) throws(UsageError) -> Double {
        guard let s = FlagLimits.decimal(value), s.isFinite, range.contains(s) else {
            throw UsageError(message: "option '\(name)' needs a number of seconds from \(range.lowerBound) to \(Int(range.upperBound)), got '\(value)'")
        }
        return s
    }
}

extension RunOptions {
    /// Takes the one option `name` from `other` (parsed by run's rules).
    mutating func merge(_ name: String, from other: RunOptions) {
        switch name {
        case "--provider": provider = other.provider
        case "--base-url": baseURL = other.baseURL
        case "--api-key-env": apiKeyEnv = other.apiKeyEnv
        case "--allow-insecure-http": allowInsecureHTTP = true
        case "--ca-file": caFile = other.caFile
        case "--capabilities": capabilities = other.capabilities
        case "--mock-fail-model": mockFailModels += other.mockFailModels
        case "--mock-faults": mockFaults = other.mockFaults
        case "--mock-capabilities": mockCapabilities = other.mockCapabilities
        default: break
        }
    }
}
