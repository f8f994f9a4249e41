import Synchronization

/// The one record of what happened to one command. Everything that acts on a command —
/// the chain's units, the stages, the call chain — records here; nothing else keeps
/// telemetry. Recording is thread-safe (a fan-out's calls record concurrently) and gives
/// each event the next sequence number, so `seq` strictly increases in recording order.
///
/// An observer, when given, sees each event as it is recorded, in `seq` order (it is called
/// under the log's lock: keep it short and never record from it).
public final class EventLog: Sendable {
    /// An event as kept: without the command's id and index, which every event shares.
    public struct Entry: Sendable {
        public var seq: Int
        public var elapsed: Duration
        public var kind: PipelineEvent.Kind
    }

    private struct State {
        var entries: [Entry] = []
        /// 0 for the primary execution, +1 at each `fallbackStarted`.
        var phase = 0
        /// Calls (of the current phase) that have delivered text.
        var streamed: Set<Int> = []
    }

    public let commandID: String
    public let index: Int
    public let provider: String
    private let clock: any PipelineClock
    private let start: Duration
    private let observer: (@Sendable (PipelineEvent) -> Void)?
    private let state: Mutex<State>

    public init(commandID: String, index: Int = 0, provider: String, clock: any PipelineClock, observer: (@Sendable (PipelineEvent) -> Void)? = nil) {
        self.commandID = commandID
        self.index = index
        self.provider = provider
        self.clock = clock
        self.start = clock.now
        self.observer = observer
        var initial = State()
        initial.entries.reserveCapacity(12)
        self.state = Mutex(initial)
    }

    /// Time since the log was opened (the command started).
    public var elapsed: Duration { clock.now - start }

    public func record(_ kind: PipelineEvent.Kind) {
        let elapsed = clock.now - start
        state.withLock { state in
            let entry = Entry(seq: state.entries.count, elapsed: elapsed, kind: kind)
            switch kind {
            case .fallbackStarted:
                state.phase += 1
                state.streamed = []
            case .textDelta(let call, _): state.streamed.insert(call)
            default: break
            }
            state.entries.append(entry)
            if let observer {
                observer(PipelineEvent(commandID: commandID, index: index, seq: entry.seq, elapsed: elapsed, kind: kind))
            }
        }
    }

    /// Everything recorded so far, in order.
    public var entries: [Entry] { state.withLock { $0.entries } }

    public var events: [PipelineEvent] {
        entries.map { PipelineEvent(commandID: commandID, index: index, seq: $0.seq, elapsed: $0.elapsed, kind: $0.kind) }
    }

    /// Whether call `call` of the current phase has delivered text: after that, a failure is not
    /// retried, bypassed or rescued by the fallback (the reader already has part of an answer).
    public func hasStreamed(call: Int) -> Bool { state.withLock { $0.streamed.contains(call) } }

    /// Whether any call of the command has delivered text.
    public var hasStreamedAny: Bool {
        state.withLock { state in
            state.entries.contains { if case .textDelta = $0.kind { true } else { false } }
        }
    }

    /// Attempts recorded for call `call` in the current phase.
    public func attempts(call: Int) -> Int {
        state.withLock { state in
            var count = 0
            for entry in state.entries.reversed() {
                if case .fallbackStarted = entry.kind { break }
                if case .attemptStarted(let c, _, _, _) = entry.kind, c == call { count += 1 }
            }
            return count
        }
    }
}
