import CommandPipeline
import CommandPipelineHTTP
import CommandPipelineSQLite
import Foundation
import Synchronization

/// One `--sink KIND:TARGET[@PRIORITY]`.
struct SinkSpec: Equatable {
    enum Kind: String, CaseIterable {
        case jsonl, webhook, sqlite
    }

    var kind: Kind
    var target: String
    var priority: Int

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
                hint: "e.g. --sink jsonl:results.jsonl or --sink sqlite:results.db@10")
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
        guard !target.isEmpty else { throw UsageError(message: "option '--sink \(kind.rawValue):' needs a \(kind == .webhook ? "URL" : "file path") after the colon") }
        return SinkSpec(kind: kind, target: target, priority: priority)
    }
}

/// The CLI's side of result sinks: builds them from `--sink`, feeds each written result line
/// to the dispatcher, and reports failures on stderr.
final class SinkFeed: Sendable {
    let dispatcher: SinkDispatcher
    let runID: String
    /// Failures written to stderr as they happen; the rest are counted in the closing line.
    static let shownFailures = 20
    /// The sinks' queue: results and bytes waiting at most (said in `--help`).
    static let queueCapacity = 100_000
    static let queueBytes = SinkDispatcher.defaultMaxQueuedBytes

    private init(sinks: [any ResultSink], runID: String, timeout: Duration) {
        self.runID = runID
        let counter = SinkFeedCounter()
        dispatcher = SinkDispatcher(sinks: sinks, timeout: timeout, capacity: Self.queueCapacity, maxQueuedBytes: Self.queueBytes) { failure in
            if counter.next() <= SinkFeed.shownFailures { StandardError.write("pipeline: \(StandardError.oneLine("\(failure)"))\n") }
        }
    }

    /// The sinks `options` asks for, opened now so a bad path or URL is a usage error before any command runs.
    static func make(_ options: RunOptions, runID: String) -> Result<SinkFeed?, UsageError> {
        guard !options.sinks.isEmpty else { return .success(nil) }
        var sinks: [any ResultSink] = []
        for spec in options.sinks {
            do {
                switch spec.kind {
                case .jsonl:
                    sinks.append(try JSONLinesFileSink(path: spec.target, priority: spec.priority))
                case .sqlite:
                    sinks.append(try SQLiteSink(path: spec.target, priority: spec.priority))
                case .webhook:
                    guard let url = URL(string: spec.target) else { throw UsageError(message: "option '--sink webhook:' needs a URL, got something that is not one") }
                    sinks.append(try WebhookSink(
                        url: url, priority: spec.priority, retryPolicy: RetryPolicy(maxAttempts: options.maxAttempts),
                        allowInsecureHTTP: options.allowInsecureHTTP))
                }
            } catch let error as APIError {
                return .failure(UsageError(message: "option '--sink \(spec.kind.rawValue):…': \(error.message)"))
            } catch let error as UsageError {
                return .failure(error)
            } catch {
                return .failure(UsageError(message: "option '--sink \(spec.kind.rawValue):\(spec.target)': \(error)"))
            }
        }
        return .success(SinkFeed(sinks: sinks, runID: runID, timeout: .milliseconds(Int(options.sinkTimeoutSeconds * 1000))))
    }

    /// Hands a written result line to the sinks (its `id` and `index` read back from the line).
    func submit(_ line: [UInt8], succeeded: Bool) {
        var record = line
        if record.last == 0x0a { record.removeLast() }
        guard case .object(let object)? = try? JSONParser.parse(record),
              case .string(let id)? = object["id"], case .int(let index)? = object["index"]
        else { return }
        dispatcher.submit(ResultDelivery(runID: runID, commandID: id, index: index, status: succeeded ? .succeeded : .failed, record: record))
    }

    /// Waits (at most twice the sink timeout) for queued deliveries, finishes every sink, and
    /// says on stderr how many failures there were beyond those already shown.
    func finish() async -> [SinkFailure] {
        let failures = await dispatcher.finish(within: dispatcher.timeout * 2)
        if failures.count > Self.shownFailures {
            StandardError.write("pipeline: \(failures.count) sink failures in all (\(failures.count - Self.shownFailures) not shown)\n")
        }
        return failures
    }
}

/// Counts failures for the "first N shown" rule.
private final class SinkFeedCounter: Sendable {
    private let count = Atomic<Int>(0)
    func next() -> Int { count.add(1, ordering: .relaxed).newValue }
}
