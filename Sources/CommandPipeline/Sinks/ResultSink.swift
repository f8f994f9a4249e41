import Foundation

/// A receiver of finished results: a file, a database, a webhook (seed 003's result handlers).
///
/// Sinks run off the output path, through a `SinkDispatcher`: for each delivery, the sinks that
/// are `enabled(for:)` it run one after another in `priority` order (lower first; equal
/// priorities in the order given), each bounded by the dispatcher's timeout. A sink that throws or
/// hangs is reported under its `name` and changes nothing else: not the result, not what any
/// other sink receives.
///
///     result line ──▶ stdout                       (never waits for a sink)
///          └────────▶ dispatcher queue ──▶ priority 10 ▶ priority 50 ▶ priority 100 …
///                                           (each: enabled? → deliver, within the timeout)
///
/// Deliveries can arrive twice (a re-run, a resumed run keeping its `--run-id`, a retried
/// batch): `ResultDelivery.idempotencyKey` is the same each time, so a sink can make the
/// second one harmless (an upsert, an `Idempotency-Key` header).
public protocol ResultSink: Sendable {
    /// How the sink is named in failure reports, e.g. `jsonl(results.jsonl)`.
    var name: String { get }
    /// Lower runs first; the built-in sinks default to 100.
    var priority: Int { get }
    /// Whether this sink wants `delivery` (e.g. only failures); by default it wants all.
    func enabled(for delivery: ResultDelivery) -> Bool
    /// Takes one result. Throwing reports a failure of this sink for this delivery, nothing more.
    func deliver(_ delivery: ResultDelivery) async throws
    /// Called once at the end of the run, after the last delivery: write what is batched, make
    /// it durable (fsync, commit), release resources. By default nothing.
    func finish() async throws
    /// Longest one `deliver` or `finish` call of this sink may take; nil (the default): the
    /// dispatcher's timeout.
    var callTimeout: Duration? { get }
    /// True when `deliver` never waits (it only appends to a bounded buffer of the sink's own, a
    /// thread of its own writes it): the dispatcher then calls it without a timeout of its own.
    /// False by default.
    var deliversWithoutWaiting: Bool { get }
}

extension ResultSink {
    public var priority: Int { 100 }
    public func enabled(for delivery: ResultDelivery) -> Bool { true }
    public func finish() async throws {}
    public var callTimeout: Duration? { nil }
    public var deliversWithoutWaiting: Bool { false }
}

/// One finished command, as sinks receive it. It depends on nothing inside the engine: the
/// result record is the exact JSON a `pipeline` result line holds (without its newline).
///
/// A value with `let` fields: every sink receives its own copy, so no sink can change what
/// another sees.
public struct ResultDelivery: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        case succeeded
        case failed
    }

    /// The run this result belongs to (`--run-id`; fresh for each run unless given).
    public let runID: String
    public let commandID: String
    /// The command's position in its input (0-based).
    public let index: Int
    public let status: Status
    /// The result record as UTF-8 JSON, without a trailing newline. A slice: the CLI hands on
    /// the bytes of the line it wrote (a large answer is held once, not once per reader).
    public let record: ArraySlice<UInt8>

    public init(runID: String, commandID: String, index: Int, status: Status, record: ArraySlice<UInt8>) {
        self.runID = runID
        self.commandID = commandID
        self.index = index
        self.status = status
        self.record = record
    }

    public init(runID: String, commandID: String, index: Int, status: Status, record: [UInt8]) {
        self.init(runID: runID, commandID: commandID, index: index, status: status, record: record[...])
    }

    /// The delivery of a command's outcome, with the record `ResultWriter` writes for it.
    public init(runID: String, outcome: CommandOutcome, index: Int) {
        var record: [UInt8] = []
        ResultWriter.record(outcome, index: index, to: &record)
        self.init(runID: runID, commandID: outcome.command.id, index: index, status: outcome.succeeded ? .succeeded : .failed, record: record)
    }

    /// `run id` + `/` + `command id`: the same for every delivery of this command in this run.
    public var idempotencyKey: String { Self.idempotencyKey(runID: runID, commandID: commandID) }

    public static func idempotencyKey(runID: String, commandID: String) -> String { runID + "/" + commandID }

    /// The record as a string.
    public var recordText: String { String(decoding: record, as: UTF8.self) }
}

/// A sink that failed: which one, for which command (nil: at the end of the run), and how.
public struct SinkFailure: Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// `deliver` or `finish` threw; the error's description.
        case threw(String)
        /// It did not return within the timeout (it is abandoned: the run does not wait for it).
        case timedOut(Duration)
        /// The sink was still busy with an earlier delivery it timed out on, so this one was not given to it.
        case busy
        /// The dispatcher's queue was full: the delivery was dropped before any sink saw it.
        case queueFull
        /// The run ended before the delivery could be made (the drain's time ran out).
        case notDelivered
    }

    public let sink: String
    /// The command whose delivery failed; nil when `finish` failed.
    public let commandID: String?
    public let reason: Reason

    public init(sink: String, commandID: String?, reason: Reason) {
        self.sink = sink
        self.commandID = commandID
        self.reason = reason
    }

    public var description: String {
        let what = commandID.map { "delivering '\($0)'" } ?? "finishing"
        switch reason {
        case .threw(let message): return "sink \(sink) failed \(what): \(message)"
        case .timedOut(let limit): return "sink \(sink) timed out \(what) (limit \(Self.seconds(limit)) s); it was abandoned"
        case .busy: return "sink \(sink) skipped \(what): still busy with an earlier delivery that timed out"
        case .queueFull: return "sink \(sink) missed \(what): the delivery queue was full"
        case .notDelivered: return "sink \(sink) missed \(what): the run ended before it was delivered"
        }
    }

    private static func seconds(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000)" : String(format: "%.3f", Double(ms) / 1000)
    }
}

extension ResultDelivery {
    /// A new run id (`RunID.make`): 16 random hex digits after the UTC start time, e.g.
    /// `20261122T134028Z-9f2c…`, so ids sort by start and never collide in practice.
    public static func makeRunID(now: Date = Date()) -> String { RunID.make(now: now) }
}

/// A run id: 16 random hex digits after the UTC start time, e.g. `20261122T134028Z-9f2c…`,
/// so ids sort by start and never collide in practice.
package enum RunID {
    public static func make(now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        let random = String(generator.next() as UInt64, radix: 16)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: now) + "-" + String(repeating: "0", count: 16 - random.count) + random
    }

    /// Checks a run id given by a user: 1 to 128 characters from `A–Z a–z 0–9 . _ : -`.
    /// Returns what is wrong, or nil.
    public static func problem(_ id: String) -> String? {
        guard !id.isEmpty, id.utf8.count <= 128 else { return "a run id has 1 to 128 characters, got \(id.utf8.count)" }
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-".utf8)
        if let bad = id.utf8.first(where: { !allowed.contains($0) }) {
            return "a run id may hold only letters, digits and . _ : - (found byte 0x\(String(bad, radix: 16)))"
        }
        return nil
    }
}
