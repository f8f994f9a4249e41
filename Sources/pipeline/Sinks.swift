import CommandPipeline
import CommandPipelineHTTP
import CommandPipelinePostgres
import CommandPipelineSQLite
import Foundation
import Synchronization

/// One `--sink KIND:TARGET[@PRIORITY]`, or one entry of a `--sinks FILE`.
struct SinkSpec: Equatable {
    enum Kind: String, CaseIterable {
        case jsonl, webhook, sqlite, postgres
    }

    var kind: Kind
    var target: String
    var priority: Int
    /// From a `--sinks` file only: rows per transaction or results per request, this sink's own
    /// call timeout, and the kind's options (`SinksFile.optionKeys`).
    var batchSize: Int? = nil
    var timeoutSeconds: Double? = nil
    var options: [String: String] = [:]
    /// How messages name it: `--sink` or `--sinks sinks[2]`.
    var origin = "--sink"
    /// Values a `--sinks` file took from the environment: left out of every message about this sink.
    var expandedValues: [String] = []

    /// `message` without any value taken from the environment (those of 3 bytes or more: a
    /// shorter one could not be told from ordinary text, and is no secret).
    func withoutExpandedValues(_ message: String) -> String {
        expandedValues.filter { $0.utf8.count >= 3 }.sorted { $0.utf8.count > $1.utf8.count }.reduce(message) {
            $0.replacingOccurrences(of: $1, with: "<from the environment>")
        }
    }

    static let defaultPriority = 100

    /// `jsonl:out.jsonl`, `sqlite:results.db@10`, `webhook:https://example.com/hook@50`. The
    /// priority is the text after the last `@` when that is a whole number (so a URL's
    /// `user@host` is never taken for one); a target that itself ends in `@DIGITS` needs an
    /// explicit priority after it.
    static func parse(_ value: String) throws(UsageError) -> SinkSpec {
        let kinds = Kind.allCases.map(\.rawValue).joined(separator: ", ")
        guard let colon = value.firstIndex(of: ":"), let kind = Kind(rawValue: String(value[..<colon])) else {
            throw UsageError(
                message: "option '--sink' needs KIND:TARGET with KIND one of \(kinds), got '\(value)'",
                hint: "e.g. --sink jsonl:results.jsonl, --sink sqlite:results.db@10 or --sink 'postgres:postgresql://app@127.0.0.1:5432/runs?table=results'")
        }
        var target = String(value[value.index(after: colon)...])
        var priority = defaultPriority
        if let at = target.lastIndex(of: "@") {
            let suffix = target[target.index(after: at)...]
            let digits = suffix.hasPrefix("-") ? suffix.dropFirst() : suffix[...]
            if !digits.isEmpty && digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber) {
                guard let n = Int(suffix), FlagLimits.sinkPriority.contains(n) else {
                    throw UsageError(message: "option '--sink': the priority after @ must be a whole number from \(FlagLimits.sinkPriority.lowerBound) to \(FlagLimits.sinkPriority.upperBound), got '\(suffix)'")
                }
                priority = n
                target = String(target[..<at])
            }
        }
        guard !target.isEmpty else {
            let what = kind == .webhook ? "URL" : kind == .postgres ? "postgresql:// URL" : "file path"
            throw UsageError(message: "option '--sink \(kind.rawValue):' needs a \(what) after the colon")
        }
        return SinkSpec(kind: kind, target: target, priority: priority)
    }
}

/// The CLI's side of result sinks: builds them from `--sink`, feeds each written result line
/// to the dispatcher, and reports failures on stderr.
final class SinkFeed: Sendable {
    let dispatcher: SinkDispatcher
    let runID: String
    /// Failures of deliveries written to stderr as they happen; the rest are counted in the
    /// closing line. A sink's failure at its finish (what it lost, counted) is always written.
    static let shownFailures = 20
    /// The sinks' queue: results and bytes waiting at most (said in `--help`).
    static let queueCapacity = 100_000
    static let queueBytes = SinkDispatcher.defaultMaxQueuedBytes

    private init(sinks: [any ResultSink], runID: String, timeout: Duration, hidden: SinkSpec) {
        self.runID = runID
        let counter = SinkFeedCounter()
        dispatcher = SinkDispatcher(sinks: sinks, timeout: timeout, capacity: Self.queueCapacity, maxQueuedBytes: Self.queueBytes) { failure in
            // A failure's text may quote a target (a path, a URL) that holds a value from the environment.
            // A sink's closing failure (its counts of what was lost) is always shown; deliveries' up to the cap.
            if failure.commandID == nil || counter.next() <= SinkFeed.shownFailures { StandardError.write("pipeline: \(StandardError.oneLine(hidden.withoutExpandedValues("\(failure)")))\n") }
        }
    }

    /// The sinks `options` asks for, opened now so a bad path or URL is a usage error before any command runs.
    static func make(_ options: RunOptions, runID: String) -> Result<SinkFeed?, UsageError> {
        guard !options.sinks.isEmpty else { return .success(nil) }
        var sinks: [any ResultSink] = []
        for spec in options.sinks {
            do {
                let sink: any ResultSink
                switch spec.kind {
                case .jsonl:
                    sink = try JSONLinesFileSink(path: spec.target, priority: spec.priority)
                case .sqlite:
                    let name = spec.withoutExpandedValues("sqlite(\(spec.target))")
                    sink = try SQLiteSink(
                        path: spec.target, priority: spec.priority, maxBatch: spec.batchSize ?? 1_000, maxBufferedBytes: try bufferMegabytes(spec) << 20,
                        report: { message in
                            StandardError.write("pipeline: sink \(StandardError.oneLine(name)): \(StandardError.oneLine(spec.withoutExpandedValues(message)))\n")
                        })
                case .webhook:
                    guard let url = URL(string: spec.target) else { throw UsageError(message: "option '\(spec.origin) webhook:' needs a URL, got something that is not one") }
                    sink = try WebhookSink(
                        url: url, priority: spec.priority, batchSize: spec.batchSize ?? 50, retryPolicy: RetryPolicy(maxAttempts: options.maxAttempts),
                        allowInsecureHTTP: options.allowInsecureHTTP, caFile: options.caFile.map { URL(fileURLWithPath: $0) })
                case .postgres:
                    sink = try postgres(spec, environment: ProcessInfo.processInfo.environment)
                }
                if spec.timeoutSeconds != nil || !spec.expandedValues.isEmpty {
                    // Named without values from the environment; with its own timeout when the file gives one.
                    sinks.append(ConfiguredSink(
                        base: sink, name: spec.withoutExpandedValues(sink.name), callTimeout: spec.timeoutSeconds.map { .milliseconds(Int($0 * 1000)) }))
                } else {
                    sinks.append(sink)
                }
            } catch let error as APIError {
                return .failure(UsageError(message: spec.withoutExpandedValues("option '\(spec.origin) \(spec.kind.rawValue):…': \(error.message)")))
            } catch let error as UsageError {
                return .failure(UsageError(message: spec.withoutExpandedValues(error.message), hint: error.hint))
            } catch {
                return .failure(UsageError(message: spec.withoutExpandedValues("option '\(spec.origin) \(spec.kind.rawValue):\(spec.kind == .postgres ? "…" : spec.target)': \(error)")))
            }
        }
        var hidden = SinkSpec(kind: .jsonl, target: "-", priority: 0)
        hidden.expandedValues = options.sinks.flatMap(\.expandedValues)
        return .success(SinkFeed(sinks: sinks, runID: runID, timeout: .milliseconds(Int(options.sinkTimeoutSeconds * 1000)), hidden: hidden))
    }

    /// The `max_buffer_mb` option of a database sink (256 when not given): what its writer holds at most while it is behind.
    private static func bufferMegabytes(_ spec: SinkSpec) throws(UsageError) -> Int {
        guard let text = spec.options["max_buffer_mb"] else { return 256 }
        guard let n = Int(text), SinksFile.bufferMegabytes.contains(n) else {
            throw UsageError(message: "option '\(spec.origin)': max_buffer_mb must be a whole number from 1 to 65536")
        }
        return n
    }

    /// A PostgreSQL sink from its URL and options. The password is only ever read from the
    /// environment (`password_env`, or libpq's `PGPASSWORD`): a variable named but unset is a
    /// usage error, not a connection failure later.
    private static func postgres(_ spec: SinkSpec, environment: [String: String]) throws -> PostgresSink {
        var target: PostgresTarget
        do throws(PostgresTarget.ParseError) {
            target = try PostgresTarget.parse(spec.target)
            let inURL = Set((URLComponents(string: spec.target)?.queryItems ?? []).map(\.name))
            for (key, value) in spec.options.sorted(by: { $0.key < $1.key }) where key != "max_buffer_mb" {
                guard !inURL.contains(key) else { throw PostgresTarget.ParseError(message: "'\(key)' is given both in the URL and in options; give it once") }
                try target.set(key, to: value)
            }
        } catch {
            throw UsageError(message: "option '\(spec.origin) postgres:…': \(error.message)")
        }
        let bufferMB = try bufferMegabytes(spec)
        if let variable = target.passwordEnvironmentVariable, (environment[variable] ?? "").isEmpty {
            throw UsageError(message: "option '\(spec.origin) postgres:…': password_env names '\(variable)', which is not set (or empty)")
        }
        let name = spec.withoutExpandedValues("postgres(\(target))")
        return PostgresSink(
            target: target, priority: spec.priority, maxBatch: spec.batchSize ?? 1_000, maxBufferedBytes: bufferMB << 20, environment: environment,
            report: { message in
                StandardError.write("pipeline: sink \(StandardError.oneLine(name)): \(StandardError.oneLine(spec.withoutExpandedValues(message)))\n")
            })
    }

    /// Hands a written result record to the sinks: its bytes shared, not copied (a trailing
    /// newline is left out of the view), with the id and index the run already knows.
    func submit(_ record: ArraySlice<UInt8>, id: String, index: Int, succeeded: Bool) {
        let record = record.last == 0x0a ? record.dropLast() : record
        dispatcher.submit(ResultDelivery(runID: runID, commandID: id, index: index, status: succeeded ? .succeeded : .failed, record: record))
    }

    /// Waits (at most twice the sink timeout) for queued deliveries, finishes every sink, and
    /// says on stderr how many failures there were beyond those already shown.
    func finish() async -> [SinkFailure] {
        let failures = await dispatcher.finish(within: dispatcher.timeout * 2)
        let ofDeliveries = failures.count { $0.commandID != nil }
        if ofDeliveries > Self.shownFailures {
            StandardError.write("pipeline: \(failures.count) sink failures in all (\(ofDeliveries - Self.shownFailures) not shown)\n")
        }
        return failures
    }
}

/// Counts failures for the "first N shown" rule.
private final class SinkFeedCounter: Sendable {
    private let count = Atomic<Int>(0)
    func next() -> Int { count.add(1, ordering: .relaxed).newValue }
}

/// A sink from a `--sinks` file: named without the values it took from the environment, and
/// with a call timeout of its own (`timeout_seconds`) when the file gives one.
private struct ConfiguredSink: ResultSink {
    let base: any ResultSink
    let name: String
    let callTimeout: Duration?
    var priority: Int { base.priority }
    var deliversWithoutWaiting: Bool { base.deliversWithoutWaiting }
    func enabled(for delivery: ResultDelivery) -> Bool { base.enabled(for: delivery) }
    func deliver(_ delivery: ResultDelivery) async throws { try await base.deliver(delivery) }
    func finish() async throws { try await base.finish() }
}
