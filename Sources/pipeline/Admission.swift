import CommandPipeline
import Synchronization

/// Which command runs next, and in which slot: the commands read but not started, in input
/// order, and `--concurrency` as slots, under one lock — one concept (admission), where a
/// queue and a slot counter kept apart needed three locks and a rule spread over both to hand
/// a slot to the next command.
///
/// A command works only while it holds a slot. The run loop starts a command when a slot is
/// free (`start`); a task whose command has ended goes on to the next queued command in the
/// same slot (`SlotTicket.finish`), which saves a task's creation and the growth of its stack
/// each time (about a third of the CLI's allocations per command, ADR 0010). A command that
/// waits out a retry's backoff, or waits for an upload or cache another command is making,
/// lends its slot (a new command may start in it) and, when the wait is over, takes one back
/// before any new command starts. Waits of the rate limiter keep their slot, and so does the
/// command making shared work (through its backoffs too): whoever waits for that work may hold
/// a slot, so the work must never need one back (issue 27; `Design/resilience.md`, "What a
/// waiting command holds").
final class Admission: Sendable {
    struct Item: Sendable {
        var piece: JSONStreamSplitter.Piece
        var index: Int
        /// Skipped under `--resume` (decided in input order, when it was added).
        var skip: Bool
    }

    private struct State {
        var queue: [Item] = []
        var head = 0
        /// Items taken since the start: with the commands finished, what is in flight.
        var taken = 0
        var stopped = false
        /// Slots no command holds.
        var free: Int
        /// Commands whose wait is over, waiting for a slot back, in the order they asked.
        var reclaimers: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var cancelled: Set<Int> = []
        var nextID = 0

        /// The next queued command, or nil when there is none or taking has stopped.
        mutating func dequeue() -> Item? {
            guard !stopped, head < queue.count else { return nil }
            let item = queue[head]
            head += 1
            taken += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024 && head * 2 >= queue.count {
                // The queue rarely drains while input streams in: drop the started prefix.
                queue.removeFirst(head)
                head = 0
            }
            return item
        }

        /// A slot given back: to the first command waiting for one (returned, to be resumed
        /// outside the lock), else free for a new command.
        mutating func giveBack() -> CheckedContinuation<Bool, Never>? {
            if !reclaimers.isEmpty { return reclaimers.removeFirst().continuation }
            free += 1
            return nil
        }
    }

    private let state: Mutex<State>
    /// Told (outside the lock) when a slot is free for a new command.
    private let onFree: @Sendable () -> Void

    init(slots: Int, onFree: @escaping @Sendable () -> Void) {
        state = Mutex(State(free: max(1, slots)))
        self.onFree = onFree
    }

    func append(_ items: [Item]) {
        state.withLock { $0.queue.append(contentsOf: items) }
    }

    /// A new command to start, with a slot taken for it: only when a command is queued, a slot
    /// is free and no waiting command wants one back. Nil after `stop()`.
    func start() -> Item? {
        state.withLock { s in
            guard s.free > 0, s.reclaimers.isEmpty, let item = s.dequeue() else { return nil }
            s.free -= 1
            return item
        }
    }

    /// A command holding its slot has ended. With `goOn`, and when no waiting command wants a
    /// slot back, the next queued command, to run in the same slot (as if the slot were given
    /// back and taken again at once). Otherwise nil, and the slot goes back: to the first
    /// waiting command, else to new commands (and the run loop is told).
    func ended(goOn: Bool) -> Item? {
        let (item, handed) = state.withLock { s -> (Item?, CheckedContinuation<Bool, Never>?) in
            if goOn && s.reclaimers.isEmpty, let item = s.dequeue() { return (item, nil) }
            return (nil, s.giveBack())
        }
        if item != nil { return item }
        if let handed { handed.resume(returning: true) } else { onFree() }
        return nil
    }

    /// A waiting command lends its slot: to the first command waiting to go on, else to new
    /// commands (and the run loop is told).
    func lend() {
        let handed = state.withLock { $0.giveBack() }
        if let handed { handed.resume(returning: true) } else { onFree() }
    }

    /// Takes a slot back after a wait, in the order asked (true), or gives up when the task is
    /// cancelled (false: the command ends without one).
    func reclaim() async -> Bool {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now = state.withLock { s -> Bool? in
                    if s.cancelled.remove(id) != nil { return false }
                    if s.free > 0 && s.reclaimers.isEmpty {
                        s.free -= 1
                        return true
                    }
                    s.reclaimers.append((id, continuation))
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiting = state.withLock { s -> CheckedContinuation<Bool, Never>? in
                guard let i = s.reclaimers.firstIndex(where: { $0.id == id }) else {
                    s.cancelled.insert(id)   // not waiting yet: it will see this and not wait
                    return nil
                }
                return s.reclaimers.remove(at: i).continuation
            }
            waiting?.resume(returning: false)
        }
    }

    /// No command is taken from now on (an interrupt, or output that failed).
    func stop() { state.withLock { $0.stopped = true } }

    /// Commands taken so far, and whether none is left to take.
    var progress: (taken: Int, empty: Bool) {
        state.withLock { ($0.taken, $0.head == $0.queue.count) }
    }

    /// Whether a command waits for a slot back (for tests).
    var hasReclaimer: Bool { state.withLock { !$0.reclaimers.isEmpty } }
}

/// One command's hold on a slot, and its lender for the engine's waits (`BackoffScope`): a
/// retry's backoff, or another command's upload or cache creation. Only a command with one call
/// (and at most one file to upload) lends: its requests and waits go one at a time, so while
/// one waits the command does nothing else. Others keep their slot while they wait — safe,
/// because the work they wait for never needs a slot back (`SingleFlight`).
final class SlotTicket: BackoffLender {
    private let admission: Admission
    private let state = Mutex<(lends: Bool, holding: Bool)>((false, true))

    init(admission: Admission) { self.admission = admission }

    func allowLending(for command: PlannedCommand) {
        let plan = command.plan
        guard plan.calls.count == 1 else { return }
        let files = plan.sharedParts.count { $0.placeholder != nil } + plan.calls[0].parts.count { $0.placeholder != nil }
        if files <= 1 { state.withLock { $0.lends = true } }
    }

    func backoffStarted() {
        let lent = state.withLock { s -> Bool in
            guard s.lends, s.holding else { return false }
            s.holding = false
            return true
        }
        if lent { admission.lend() }
    }

    func backoffEnded() async {
        guard state.withLock({ $0.lends && !$0.holding }) else { return }
        if await admission.reclaim() { state.withLock { $0.holding = true } }
    }

    /// At the command's end: the next queued command to run in this slot (`Admission.ended`),
    /// or nil — the task ends. `goOn` false (the task is cancelled) gives the slot back. A
    /// ticket whose wait was cancelled holds no slot and gives none back.
    func finish(goOn: Bool = true) -> Admission.Item? {
        let held = state.withLock { s -> Bool in
            defer { s.holding = false }
            return s.holding
        }
        return held ? admission.ended(goOn: goOn) : nil
    }
}
