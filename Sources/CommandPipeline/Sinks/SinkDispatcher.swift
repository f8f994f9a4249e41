import Synchronization

/// Runs result sinks off the output path, each isolated from the others and from the result.
///
/// `submit` never waits: it puts the delivery in a queue bounded in deliveries (`capacity`) and
/// in bytes (`maxQueuedBytes`, the records' sizes): a full queue drops it and reports that,
/// rather than holding back whoever produces results or growing without bound behind a sink
/// that never answers. One worker takes the
/// queue in order; for each delivery it runs the sinks that are `enabled(for:)` it, lowest
/// `priority` first (equal priorities in the order given), each within its `callTimeout` (or
/// the dispatcher's `timeout` when it has none):
///
/// - a sink that throws is reported (`SinkFailure.threw`) and the next sink runs;
/// - a sink that does not return in time is abandoned (its task is cancelled, nobody waits for
///   it) and reported; until that call returns, the sink is skipped (`busy`), so a hung sink
///   costs the others one timeout, not one per delivery;
/// - every sink receives the same `ResultDelivery` value, which no sink can change.
///
/// `finish(within:)` ends the run: it waits a bounded time for the queue to drain, reports what
/// could not be delivered, then calls each sink's `finish()` (each within `timeout`).
/// Failures go to `onFailure` as they happen and are returned by `finish`.
public final class SinkDispatcher: Sendable {
    /// The sinks, in the order they run for each delivery.
    public let sinks: [any ResultSink]
    public let timeout: Duration
    private let clock: any PipelineClock
    private let onFailure: (@Sendable (SinkFailure) -> Void)?
    private let continuation: AsyncStream<ResultDelivery>.Continuation
    private let state: Mutex<State>
    private let worker: Mutex<Task<Void, Never>?>

    private struct State {
        var failures: [SinkFailure] = []
        /// Sinks (by position) whose abandoned call has not returned yet.
        var busy: Set<Int> = []
        /// Set when the drain ran out of time: what is still queued is reported, not delivered.
        var abandoned = false
        var delivered = 0
        /// Bytes of the records queued and not yet taken by the worker.
        var queuedBytes = 0
    }

    /// Bytes of records the queue holds at most by default: 64 MiB.
    public static let defaultMaxQueuedBytes = 64 << 20
    /// Bytes of records the queue holds at most.
    public let maxQueuedBytes: Int

    /// - Parameters:
    ///   - sinks: run in `priority` order (stable for equal priorities).
    ///   - timeout: longest one `deliver` or `finish` call may take.
    ///   - capacity: deliveries queued at most; beyond it `submit` drops and reports.
    ///   - maxQueuedBytes: bytes of records queued at most (a delivery larger than this alone
    ///     is still queued when the queue is empty); beyond it `submit` drops and reports.
    ///   - clock: times the timeouts and the drain (a `ManualClock` in tests).
    ///   - onFailure: hears each failure as it happens (the CLI writes it to stderr).
    public init(
        sinks: [any ResultSink], timeout: Duration = .seconds(30), capacity: Int = 10_000, maxQueuedBytes: Int = SinkDispatcher.defaultMaxQueuedBytes,
        clock: any PipelineClock = SystemClock(), onFailure: (@Sendable (SinkFailure) -> Void)? = nil
    ) {
        self.maxQueuedBytes = max(1, maxQueuedBytes)
        self.sinks = sinks.enumerated().sorted { ($0.element.priority, $0.offset) < ($1.element.priority, $1.offset) }.map(\.element)
        self.timeout = timeout
        self.clock = clock
        self.onFailure = onFailure
        let (stream, continuation) = AsyncStream<ResultDelivery>.makeStream(bufferingPolicy: .bufferingOldest(max(1, capacity)))
        self.continuation = continuation
        state = Mutex(State())
        worker = Mutex(nil)
        // Weak: a dispatcher dropped without `finish` ends its worker (the stream ends with it).
        let task = Task { [weak self] in
            for await delivery in stream {
                guard let self else { return }
                await self.dispatch(delivery)
            }
        }
        worker.withLock { $0 = task }
    }

    /// Queues `delivery` for the sinks; never waits.
    public func submit(_ delivery: ResultDelivery) {
        let size = delivery.record.count
        let fits = state.withLock { s -> Bool in
            guard s.queuedBytes == 0 || s.queuedBytes &+ size <= maxQueuedBytes else { return false }
            s.queuedBytes &+= size
            return true
        }
        guard fits else { return reportMissed(delivery, .queueFull) }
        switch continuation.yield(delivery) {
        case .enqueued: return
        case .dropped: reportMissed(delivery, .queueFull)
        case .terminated: reportMissed(delivery, .notDelivered)
        @unknown default: reportMissed(delivery, .notDelivered)
        }
        state.withLock { $0.queuedBytes -= size }
    }

    /// Bytes of records queued now (for tests and progress).
    public var queuedBytes: Int { state.withLock { $0.queuedBytes } }

    /// Failures so far.
    public var failures: [SinkFailure] { state.withLock { $0.failures } }

    /// Deliveries handed to at least one sink's turn (successful or not) so far.
    public var processed: Int { state.withLock { $0.delivered } }

    /// Ends the run: takes no more deliveries, waits at most `within` for the queued ones,
    /// reports those left undelivered, then finishes each sink (each within `timeout`).
    /// Returns every failure of the run, in the order they happened.
    public func finish(within limit: Duration) async -> [SinkFailure] {
        continuation.finish()
        if let task = worker.withLock({ $0 }) {
            let drained = await Self.race(timeout: limit, clock: clock) { await task.value }
            if case .timedOut = drained {
                // The worker now reports each queued delivery without running a sink (it is not
                // cancelled: it still owes those reports); its current sink call is bounded by `timeout`.
                state.withLock { $0.abandoned = true }
                _ = await Self.race(timeout: timeout, clock: clock) { await task.value }
            }
        }
        for (position, sink) in sinks.enumerated() {
            if state.withLock({ $0.busy.contains(position) }) {
                record(SinkFailure(sink: sink.name, commandID: nil, reason: .busy))
                continue
            }
            let limit = sink.callTimeout ?? timeout
            switch await Self.race(timeout: limit, clock: clock, { try await sink.finish() }) {
            case .finished: break
            case .threw(let error): record(SinkFailure(sink: sink.name, commandID: nil, reason: .threw(Self.describe(error))))
            case .timedOut: record(SinkFailure(sink: sink.name, commandID: nil, reason: .timedOut(limit)))
            }
        }
        return failures
    }

    private func dispatch(_ delivery: ResultDelivery) async {
        state.withLock {
            $0.delivered += 1
            $0.queuedBytes -= delivery.record.count
        }
        for (position, sink) in sinks.enumerated() where sink.enabled(for: delivery) {
            if state.withLock({ $0.abandoned }) {
                record(SinkFailure(sink: sink.name, commandID: delivery.commandID, reason: .notDelivered))
                continue
            }
            let free = state.withLock { s -> Bool in
                guard !s.busy.contains(position) else { return false }
                s.busy.insert(position)
                return true
            }
            guard free else {
                record(SinkFailure(sink: sink.name, commandID: delivery.commandID, reason: .busy))
                continue
            }
            let limit = sink.callTimeout ?? timeout
            let outcome = await Self.race(timeout: limit, clock: clock) { [self] in
                defer { state.withLock { _ = $0.busy.remove(position) } }
                try await sink.deliver(delivery)
            }
            switch outcome {
            case .finished: break
            case .threw(let error): record(SinkFailure(sink: sink.name, commandID: delivery.commandID, reason: .threw(Self.describe(error))))
            case .timedOut: record(SinkFailure(sink: sink.name, commandID: delivery.commandID, reason: .timedOut(limit)))
            }
        }
    }

    private func reportMissed(_ delivery: ResultDelivery, _ reason: SinkFailure.Reason) {
        for sink in sinks where sink.enabled(for: delivery) {
            record(SinkFailure(sink: sink.name, commandID: delivery.commandID, reason: reason))
        }
    }

    private func record(_ failure: SinkFailure) {
        state.withLock { $0.failures.append(failure) }
        onFailure?(failure)
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? APIError { return error.message }
        return String(describing: error)
    }

    enum RaceOutcome: Sendable {
        case finished
        case threw(any Error)
        case timedOut
    }

    /// Runs `body` in a task of its own and returns when it ends or `timeout` passes, whichever
    /// is first. On timeout the body's task is cancelled and left behind: a body that ignores
    /// cancellation keeps running, but nobody waits for it.
    static func race(timeout: Duration, clock: any PipelineClock, _ body: @escaping @Sendable () async throws -> Void) async -> RaceOutcome {
        // One lock for both halves: whichever of "settled" and "someone waits" comes second resumes.
        let slot = RaceSlot()
        let settle: @Sendable (RaceOutcome) -> Void = { outcome in
            let waiter = slot.state.withLock { s -> CheckedContinuation<RaceOutcome, Never>? in
                guard s.outcome == nil else { return nil }
                s.outcome = outcome
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: outcome)
        }
        let work = Task {
            do {
                try await body()
                settle(.finished)
            } catch {
                settle(.threw(error))
            }
        }
        let deadline = clock.now + timeout
        let timer = Task {
            do {
                try await clock.sleep(until: deadline)
                settle(.timedOut)
            } catch {}
        }
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<RaceOutcome, Never>) in
            let done = slot.state.withLock { s -> RaceOutcome? in
                if s.outcome == nil { s.waiter = continuation }
                return s.outcome
            }
            if let done { continuation.resume(returning: done) }
        }
        timer.cancel()
        if case .timedOut = outcome { work.cancel() }
        return outcome
    }

    private final class RaceSlot: Sendable {
        let state = Mutex<(waiter: CheckedContinuation<RaceOutcome, Never>?, outcome: RaceOutcome?)>((nil, nil))
    }
}
