import Synchronization

/// The one record of what happened to one command. Everything that acts on a command —
/// the chain's units, the stages, the call chain — records here; nothing else keeps
/// telemetry. Recording is thread-safe (a fan-out's calls record concurrently) and gives
/// each event the next sequence number, so `seq` strictly increases in recording order.
///
/// Every event is folded into the log's `LogSummary` as it is recorded. The events are
/// stamped with the time since the command started when someone will read them: an observer,
/// which sees each event as it is recorded in `seq` order (called under the log's lock: keep it
/// short and never record from it), or `keepingEvents`, which also keeps them (`entries`). An
/// observer alone keeps nothing: a streamed answer's deltas are not held beside the answer.
/// Otherwise only the fold is kept and only durations telemetry needs are measured: keeping
/// and timing every event was a third of a command's cost on the mock.
public final class EventLog: Sendable {
    /// An event as kept: without the command's id and index, which every event shares.
    public struct Entry: Sendable {
        public var seq: Int
        public var elapsed: Duration
        public var kind: PipelineEvent.Kind

        public init(seq: Int, elapsed: Duration, kind: PipelineEvent.Kind) {
            self.seq = seq
            self.elapsed = elapsed
            self.kind = kind
        }
    }

    private struct State {
        var count = 0
        var entries: [Entry] = []
        /// Calls (of the current phase) that have delivered text.
        var streamed: Set<Int> = []
        var streamedAny = false
        /// The fold of every event so far.
        var fold: FoldCell
        /// Units that read events as they are recorded (`addReader`).
        var readers: [@Sendable (PipelineEvent.Kind) -> Void] = []

        /// Changes the fold, in place unless its cell has been handed out.
        @inline(__always)
        mutating func changeFold(_ change: (inout LogSummary) -> Void) {
            if !isKnownUniquelyReferenced(&fold) { fold = FoldCell(fold.value) }
            change(&fold.value)
        }
    }

    public let commandID: String
    public let index: Int
    public let provider: String
    /// Whether events are timed and shown (there is an observer, or `keepingEvents` was asked).
    public let keepsEvents: Bool
    /// Whether events are kept in `entries`: only when `keepingEvents` was asked. An observer
    /// sees each event as it is recorded and needs no copy: keeping them would hold a streamed
    /// answer's text a second time (its deltas) beside the answer and its result line.
    private let keepsEntries: Bool
    /// The engine's clock, and its reading when the command started.
    package let clock: any PipelineClock
    package let start: Duration
    private let observer: (@Sendable (PipelineEvent) -> Void)?
    private let state: Mutex<State>
    /// Whether any reader was added: checked before the lock, so a log without readers pays nothing.
    private let reading = Atomic<Bool>(false)

    public init(
        commandID: String, index: Int = 0, provider: String, clock: any PipelineClock, observer: (@Sendable (PipelineEvent) -> Void)? = nil,
        keepingEvents: Bool = false
    ) {
        self.commandID = commandID
        self.index = index
        self.provider = provider
        self.clock = clock
        self.start = clock.now
        self.observer = observer
        self.keepsEvents = keepingEvents || observer != nil
        self.keepsEntries = keepingEvents
        // Built in place: a state made first and then handed over was copied field by field
        // (a dozen retains and releases per command).
        self.state = Mutex(State(entries: Self.entryBuffer(keepingEvents: keepingEvents), fold: FoldCell(LogSummary(provider: provider))))
    }

    /// Whether anyone but the fold sees events (an observer, kept events, or a reader): when
    /// not, an event the fold ignores needs no clock reading.
    public var isObserved: Bool { keepsEvents || reading.load(ordering: .acquiring) }

    private static func entryBuffer(keepingEvents: Bool) -> [Entry] {
        guard keepingEvents else { return [] }
        var entries: [Entry] = []
        entries.reserveCapacity(16)
        return entries
    }

    /// Time since the log was opened (the command started).
    public var elapsed: Duration { clock.now - start }

    public func record(_ kind: PipelineEvent.Kind) { record(kind, now: keepsEvents ? clock.now : start) }

    /// Records `kind` as happening at `now` (a reading of the log's clock the caller already took).
    public func record(_ kind: PipelineEvent.Kind, now: Duration) {
        // Unread, an event the fold ignores leaves no trace: no lock, no entry.
        let reading = reading.load(ordering: .acquiring)
        if !keepsEvents && !reading && !LogSummary.folds(kind) { return }
        guard reading else {
            state.withLock { fold(kind, now: now, into: &$0) }
            return
        }
        let readers = state.withLock { state in
            fold(kind, now: now, into: &state)
            return state.readers
        }
        for reader in readers { reader(kind) }
    }

    // The events every command records, folded without building the event when nobody but the
    // fold reads events: an event is a 137-byte enum, copied by each switch over it, and
    // building and switching over three of them cost more than folding them.

    /// Records `stageFinished(name, duration:)` at `now`.
    public func recordStageFinished(_ name: String, duration: Duration, now: Duration) {
        record(folding: { $0.stageFinished(name, duration) }, or: .stageFinished(name, duration: duration), now: now)
    }

    /// Records `attemptStarted(call:attempt:model:cached:)`.
    public func recordAttemptStarted(call: Int, attempt: Int, model: String, cached: Bool) {
        record(folding: { $0.attemptStarted(call: call, model: model) }, or: .attemptStarted(call: call, attempt: attempt, model: model, cached: cached), now: nil)
    }

    /// Records `callFinished(response)`.
    public func recordCallFinished(_ response: CallResponse) {
        record(folding: { $0.callFinished(response) }, or: .callFinished(response), now: nil)
    }

    /// Records `callFinished` for each of `responses`, in order. Unread, the fold keeps the array
    /// itself (a one-call command's responses are then one array, shared by the state and the fold).
    public func recordCallsFinished(_ responses: [CallResponse]) {
        guard keepsEvents || reading.load(ordering: .acquiring) else {
            state.withLock { state in
                state.count += responses.count
                state.changeFold { $0.callsFinished(responses) }
            }
            return
        }
        for response in responses { record(.callFinished(response)) }
    }

    /// Folds with `step` (the fold's own step for `kind`) when only the fold reads events; else
    /// records `kind` like any event (`now` nil: read the clock when the event is kept).
    @inline(__always)
    private func record(folding step: (inout LogSummary) -> Void, or kind: @autoclosure () -> PipelineEvent.Kind, now: Duration?) {
        guard keepsEvents || reading.load(ordering: .acquiring) else {
            state.withLock { state in
                state.count += 1
                state.changeFold(step)
            }
            return
        }
        if let now { record(kind(), now: now) } else { record(kind()) }
    }

    /// Numbers `kind`, folds it, and keeps it when events are kept (under the lock).
    @inline(__always)
    private func fold(_ kind: PipelineEvent.Kind, now: Duration, into state: inout State) {
        state.count += 1
        switch kind {
        case .fallbackStarted: state.streamed = []
        // A rejected answer re-asked (`RepairUnit`): the repair is a new answer, retried like any
        // until its own first delta.
        case .attemptFailed(let call, _, let error, true) where error.kind == .invalidOutput: state.streamed.remove(call)
        case .textDelta(let call, _):
            state.streamed.insert(call)
            state.streamedAny = true
        default: break
        }
        state.changeFold { $0.add(kind) }
        if keepsEvents { observe(kind, now: now, in: &state) }
    }

    /// Keeps and times `kind` (it has just been given number `count - 1`) and shows it to the observer.
    private func observe(_ kind: PipelineEvent.Kind, now: Duration, in state: inout State) {
        let seq = state.count - 1
        let elapsed = now - start
        if keepsEntries { state.entries.append(Entry(seq: seq, elapsed: elapsed, kind: kind)) }
        if let observer {
            observer(PipelineEvent(commandID: commandID, index: index, seq: seq, elapsed: elapsed, kind: kind))
        }
    }

    /// Adds a reader: it sees each event recorded from now on — every event, not only those the
    /// fold keeps — after the log's lock is released (so in `seq` order for each call, not across
    /// a fan-out's concurrent calls). Hooks read their command's events this way.
    public func addReader(_ reader: @escaping @Sendable (PipelineEvent.Kind) -> Void) {
        state.withLock { $0.readers.append(reader) }
        reading.store(true, ordering: .releasing)
    }

    /// The fold of everything recorded so far, with the time since the command started and,
    /// given an estimate, the token validation; with `partials`, what a failure leaves.
    public func summary(estimate: TokenEstimate? = nil, partials: Bool = false) -> LogSummary {
        finishedFold(estimate: estimate, partials: partials).value
    }

    /// The same, as the log's own cell: handed to the state without copying the fold (a later
    /// event copies the cell first, so what was handed out never changes). `now`: a reading of
    /// the log's clock the caller already took, to end the total time at.
    func finishedFold(estimate: TokenEstimate? = nil, partials: Bool = false, now: Duration? = nil) -> FoldCell {
        let total = (now ?? clock.now) - start
        // Finished in place (finishing is idempotent and later events fold on top of it): a copy
        // finished outside would copy the telemetry's storage, which the log still shares.
        return state.withLock { state in
            state.changeFold { $0.finish(total: total, estimate: estimate, partials: partials) }
            return state.fold
        }
    }

    /// The events kept so far, in order (none unless the log was made with `keepingEvents`).
    public var entries: [Entry] { state.withLock { $0.entries } }

    public var events: [PipelineEvent] {
        entries.map { PipelineEvent(commandID: commandID, index: index, seq: $0.seq, elapsed: $0.elapsed, kind: $0.kind) }
    }

    /// Whether call `call` of the current phase has delivered text: after that, a failure is not
    /// retried, bypassed or rescued by the fallback (the reader already has part of an answer).
    public func hasStreamed(call: Int) -> Bool { state.withLock { $0.streamed.contains(call) } }

    /// Whether any call of the command has delivered text.
    public var hasStreamedAny: Bool { state.withLock { $0.streamedAny } }

    /// Attempts recorded for call `call` in the current phase.
    public func attempts(call: Int) -> Int { state.withLock { $0.fold.value.attempts(call: call) } }
}

/// A command's fold, by reference: the log changes it in place while it holds the only
/// reference, and copies it before changing it once the cell has been handed out (to the
/// state, by the telemetry stage), so a cell someone else holds never changes. Handing the
/// fold over by reference spared a copy of it (a dozen retains and releases) per command.
final class FoldCell: @unchecked Sendable {
    /// Unchecked: changed only under the log's lock while uniquely referenced (see above), and a
    /// runtime access check on every fold step cost more than the step.
    @exclusivity(unchecked) fileprivate(set) var value: LogSummary

    init(_ value: LogSummary) { self.value = value }
}
