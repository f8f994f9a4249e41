import Synchronization

/// Runs result sinks off the output path, each isolated from the others and from the result.
///
/// `submit` never waits: it puts the delivery in a queue bounded in deliveries (`capacity`) and
/// in bytes (`maxQueuedBytes`, the records' sizes): a full queue drops it and reports that,
/// rather than holding back whoever produces results or growing without bound behind a sink
/// that never answers. One worker takes what is queued **as a batch** (all of it, up to
/// `batchLimit`), in order; for each sink, lowest `priority` first (equal priorities in the
/// order given), it hands the sink the batch's deliveries that the sink is `enabled(for:)`, one
/// `deliver` call each, within the sink's `callTimeout` (or the dispatcher's `timeout`) per call:
///
/// - a sink that throws is reported for that delivery (`SinkFailure.threw`) and gets the next;
/// - a sink that does not return in time is abandoned (its task is cancelled, nobody waits for
///   it) and reported; until that call returns, the sink is skipped (`busy`), so a hung sink
///   costs the others one timeout, not one per delivery;
/// - a sink that says it `deliversWithoutWaiting` (it only appends to a buffer of its own) is
///   called directly, without a timeout;
/// - every sink receives the same `ResultDelivery` values, which no sink can change.
///
/// One timed task per sink and batch, not one per delivery: the timeout's deadline moves on as
/// each call returns (issue 28's benchmark: a task and a timer per delivery cost the run 3×).
///
/// `finish(within:)` ends the run: it waits a bounded time for the queue to drain, reports what
/// could not be delivered, then calls each sink's `finish()` (each within `timeout`).
/// Failures go to `onFailure` as they happen and are returned by `finish`.
public final class SinkDispatcher: Sendable {
    /// The sinks, in the order they run for each delivery.
    public let sinks: [any ResultSink]
    public let timeout: Duration
    /// Deliveries the worker takes at most in one batch.
    public static let batchLimit = 1024
    private let clock: any PipelineClock
    private let onFailure: (@Sendable (SinkFailure) -> Void)?
    private let queue: DeliveryQueue
    private let state: Mutex<State>
    private let worker: Mutex<Task<Void, Never>?>

    private struct State {
        var failures: [SinkFailure] = []
        /// Sinks (by position) whose abandoned call has not returned yet.
        var busy: Set<Int> = []
        /// Set when the drain ran out of time: what is still queued is reported, not delivered.
        var abandoned = false
        var delivered = 0
    }

    /// Bytes of records the queue holds at most by default: 64 MiB.
    public static let defaultMaxQueuedBytes = 64 << 20
    /// Bytes of records the queue holds at most.
    public var maxQueuedBytes: Int { queue.maxBytes }

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
        clock: (any PipelineClock)? = nil, onFailure: (@Sendable (SinkFailure) -> Void)? = nil
    ) {
        self.sinks = sinks.enumerated().sorted { ($0.element.priority, $0.offset) < ($1.element.priority, $1.offset) }.map(\.element)
        self.timeout = timeout
        self.clock = clock ?? SystemClock()
        self.onFailure = onFailure
        let queue = DeliveryQueue(capacity: max(1, capacity), maxBytes: max(1, maxQueuedBytes))
        self.queue = queue
        state = Mutex(State())
        worker = Mutex(nil)
        // Weak: a dispatcher dropped without `finish` closes its queue (deinit), which ends the worker.
        let task = Task { [weak self] in
            while let batch = await queue.next(limit: Self.batchLimit) {
                guard let self else { return }
                await self.dispatch(batch)
            }
        }
        worker.withLock { $0 = task }
    }

    deinit { queue.close() }

    /// Queues `delivery` for the sinks; never waits.
    public func submit(_ delivery: ResultDelivery) {
        switch queue.append(delivery) {
        case .queued: return
        case .full: reportMissed(delivery, .queueFull)
        case .closed: reportMissed(delivery, .notDelivered)
        }
    }

    /// Bytes of records queued now (for tests and progress).
    public var queuedBytes: Int { queue.bytes }

    /// Failures so far.
    public var failures: [SinkFailure] { state.withLock { $0.failures } }

    /// Deliveries handed to at least one sink's turn (successful or not) so far.
    public var processed: Int { state.withLock { $0.delivered } }

    /// Ends the run: takes no more deliveries, waits at most `within` for the queued ones,
    /// reports those left undelivered, then finishes each sink (each within `timeout`).
    /// Returns every failure of the run, in the order they happened.
    public func finish(within limit: Duration) async -> [SinkFailure] {
        queue.close()
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

    private func dispatch(_ batch: [ResultDelivery]) async {
        state.withLock { $0.delivered += batch.count }
        if state.withLock({ $0.abandoned }) {
            // The drain ran out of time: each delivery is reported for each sink that wanted it.
            for delivery in batch { reportMissed(delivery, .notDelivered) }
            return
        }
        for (position, sink) in sinks.enumerated() {
            let wanted = batch.filter { sink.enabled(for: $0) }
            guard !wanted.isEmpty else { continue }
            if state.withLock({ $0.abandoned }) {
                for delivery in wanted { record(SinkFailure(sink: sink.name, commandID: delivery.commandID, reason: .notDelivered)) }
                continue
            }
            if sink.deliversWithoutWaiting {
                for delivery in wanted {
                    do { try await sink.deliver(delivery) } catch {
                        record(SinkFailure(sink: sink.name, commandID: delivery.commandID, reason: .threw(Self.describe(error))))
                    }
                }
                continue
            }
            let free = state.withLock { s -> Bool in
                guard !s.busy.contains(position) else { return false }
                s.busy.insert(position)
                return true
            }
            guard free else {
                for delivery in wanted { record(SinkFailure(sink: sink.name, commandID: delivery.commandID, reason: .busy)) }
                continue
            }
            // One timed task for the whole batch; `done` counts the calls that returned, so the
            // deadline (each call's own) moves on with them and a timeout names the call it cut.
            let limit = sink.callTimeout ?? timeout
            let progress = BatchProgress()
            let outcome = await Self.race(timeout: limit, clock: clock, progress: progress) { [self] in
                defer { state.withLock { _ = $0.busy.remove(position) } }
                for delivery in wanted {
                    // Abandoned at its timeout: the dispatcher reports the call it cut and the rest.
                    if Task.isCancelled { return }
                    do { try await sink.deliver(delivery) } catch {
                        if Task.isCancelled { return }
                        record(SinkFailure(sink: sink.name, commandID: delivery.commandID, reason: .threw(Self.describe(error))))
                    }
                    progress.callReturned(at: clock.now)
                }
            }
            switch outcome {
            case .finished, .threw: break
            case .timedOut:
                // The call in progress timed out; the rest of the batch was never given to the sink.
                let cut = min(progress.returned, wanted.count - 1)
                record(SinkFailure(sink: sink.name, commandID: wanted[cut].commandID, reason: .timedOut(limit)))
                for delivery in wanted[(cut + 1)...] { record(SinkFailure(sink: sink.name, commandID: delivery.commandID, reason: .busy)) }
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
    /// cancellation keeps running, but nobody waits for it. With `progress`, the deadline is
    /// `timeout` after the latest call the body reported returned (one timer for many calls).
    static func race(
        timeout: Duration, clock: any PipelineClock, progress: BatchProgress? = nil, _ body: @escaping @Sendable () async throws -> Void
    ) async -> RaceOutcome {
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
        let start = clock.now
        let timer = Task {
            do {
                var deadline = start + timeout
                while true {
                    try await clock.sleep(until: deadline)
                    // A call returned since the timer was set: the next one has its own full timeout.
                    guard let last = progress?.lastReturn, last + timeout > deadline else { break }
                    deadline = last + timeout
                }
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

    /// How far a batch's calls got: how many returned, and when the latest did.
    final class BatchProgress: Sendable {
        private let state = Mutex<(returned: Int, last: Duration?)>((0, nil))
        var returned: Int { state.withLock { $0.returned } }
        var lastReturn: Duration? { state.withLock { $0.last } }
        func callReturned(at instant: Duration) { state.withLock { $0 = ($0.returned + 1, instant) } }
    }

    private final class RaceSlot: Sendable {
        let state = Mutex<(waiter: CheckedContinuation<RaceOutcome, Never>?, outcome: RaceOutcome?)>((nil, nil))
    }
}

/// The dispatcher's queue: deliveries in order, bounded in count and in record bytes, taken by
/// the one worker a batch at a time (it sleeps while the queue is empty).
final class DeliveryQueue: Sendable {
    enum Appended { case queued, full, closed }

    let capacity: Int
    let maxBytes: Int
    private let state = Mutex<State>(State())

    private struct State {
        /// Queued from `head` on (taken ones before it are dropped now and then, not one by one).
        var items: [ResultDelivery] = []
        var head = 0
        var bytes = 0
        var closed = false
        var waiter: CheckedContinuation<[ResultDelivery]?, Never>?
    }

    init(capacity: Int, maxBytes: Int) {
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    var bytes: Int { state.withLock { $0.bytes } }

    func append(_ delivery: ResultDelivery) -> Appended {
        let size = delivery.record.count
        let (result, waiter, batch) = state.withLock { s -> (Appended, CheckedContinuation<[ResultDelivery]?, Never>?, [ResultDelivery]) in
            guard !s.closed else { return (.closed, nil, []) }
            guard s.items.count - s.head < capacity, s.bytes == 0 || s.bytes.addingSaturating(size) <= maxBytes else { return (.full, nil, []) }
            guard let waiter = s.waiter else {
                s.items.append(delivery)
                s.bytes = s.bytes.addingSaturating(size)
                return (.queued, nil, [])
            }
            // The worker sleeps with an empty queue: this delivery is its next batch.
            s.waiter = nil
            return (.queued, waiter, [delivery])
        }
        waiter?.resume(returning: batch)
        return result
    }

    /// The next batch (at most `limit`, in order); nil once the queue is closed and empty.
    func next(limit: Int) async -> [ResultDelivery]? {
        await withCheckedContinuation { (continuation: CheckedContinuation<[ResultDelivery]?, Never>) in
            let ready = state.withLock { s -> [ResultDelivery]?? in
                if s.head < s.items.count {
                    let end = min(s.items.count, s.head + max(1, limit))
                    let batch = Array(s.items[s.head..<end])
                    s.head = end
                    if s.head == s.items.count {
                        s.items.removeAll(keepingCapacity: true)
                        s.head = 0
                    } else if s.head >= 4096 && s.head * 2 >= s.items.count {
                        s.items.removeFirst(s.head)
                        s.head = 0
                    }
                    s.bytes = max(0, s.bytes - batch.reduce(0) { $0.addingSaturating($1.record.count) })
                    return .some(batch)
                }
                if s.closed { return .some(nil) }
                s.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Takes nothing more; the worker gets what is queued, then nil.
    func close() {
        let waiter = state.withLock { s -> CheckedContinuation<[ResultDelivery]?, Never>? in
            s.closed = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }
}
