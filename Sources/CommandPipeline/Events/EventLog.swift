import Synchronization

/// The one record of what happened to one command. Everything that acts on a command —
/// the chain's units, the stages, the call chain — records here; nothing else keeps
/// telemetry. Recording is thread-safe (a fan-out's calls record concurrently) and gives
/// each event the next sequence number, so `seq` strictly increases in recording order.
///
/// Every event is folded into the log's `LogFold` as it is recorded. The events are
/// stamped with the time since the command started when someone will read them: an observer,
/// which sees each event as it is recorded in `seq` order (called under the log's lock: keep it
/// short and never record from it), or `keepingEvents`, which also keeps them (`entries`). An
/// observer alone keeps nothing: a streamed answer's deltas are not held beside the answer.
/// Otherwise only the fold is kept and only durations telemetry needs are measured: keeping
/// and timing every event was a third of a command's cost on the mock.
///
/// One entry point, `record(_:now:)`, for every event: the fold (`LogFold.add`) sees each
/// event the same way whoever reads the log.
public final class EventLog: Sendable {
    /// An event as kept: without the command's id and index, which every event shares.
    package struct Entry: Sendable {
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
        var fold: LogFold
        /// Units that read events as they are recorded (`addReader`).
        var readers: [@Sendable (PipelineEvent.Kind) -> Void] = []
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
        self.state = Mutex(State(entries: Self.entryBuffer(keepingEvents: keepingEvents), fold: LogFold(provider: provider)))
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

    /// Records `kind`: numbers it, folds it, and shows it to whoever reads the log. `now`: a
    /// reading of the log's clock the caller already took (the stage loop's, at a stage
    /// boundary); else the clock is read when someone will see the event's time.
    public func record(_ kind: PipelineEvent.Kind, now: Duration? = nil) {
        // Unread, an event the fold ignores leaves no trace: no lock, no entry.
        let reading = reading.load(ordering: .acquiring)
        if !keepsEvents && !reading && !LogFold.folds(kind) { return }
        let now = now ?? (keepsEvents ? clock.now : start)
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
        state.fold.add(kind)
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
        let total = clock.now - start
        return state.withLock { $0.fold.summary(total: total, estimate: estimate, partials: partials) }
    }

    /// The events kept so far, in order (none unless the log was made with `keepingEvents`).
    package var entries: [Entry] { state.withLock { $0.entries } }

    public var events: [PipelineEvent] {
        entries.map { PipelineEvent(commandID: commandID, index: index, seq: $0.seq, elapsed: $0.elapsed, kind: $0.kind) }
    }

    /// Whether call `call` of the current phase has delivered text: after that, a failure is not
    /// retried, bypassed or rescued by the fallback (the reader already has part of an answer).
    public func hasStreamed(call: Int) -> Bool { state.withLock { $0.streamed.contains(call) } }

    /// Whether any call of the command has delivered text.
    public var hasStreamedAny: Bool { state.withLock { $0.streamedAny } }

    /// Attempts recorded for call `call` in the current phase.
    public func attempts(call: Int) -> Int { state.withLock { $0.fold.attempts(call: call) } }
}
