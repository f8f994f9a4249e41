import CommandPipeline
import Synchronization

/// `--concurrency` as slots: a command works only while it holds one. A command that waits out
/// a retry's backoff, or waits for an upload or cache another command is making, lends its slot
/// (a new command may start in it) and, when the wait is over, takes one back before any new
/// command starts. Waits of the rate limiter keep their slot, and so does the command making
/// shared work (through its backoffs too): whoever waits for that work may hold a slot, so the
/// work must never need one back (issue 27; `Design/resilience.md`, "What a waiting command holds").
final class Slots: Sendable {
    private struct State {
        var free: Int
        var reclaimers: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var cancelled: Set<Int> = []
        var nextID = 0
    }

    private let state: Mutex<State>
    /// Told (outside the lock) when a slot is free for a new command.
    private let onFree: @Sendable () -> Void

    init(_ capacity: Int, onFree: @escaping @Sendable () -> Void) {
        state = Mutex(State(free: max(1, capacity)))
        self.onFree = onFree
    }

    /// Takes a slot for a new command: only when one is free and no waiting command wants one back.
    func tryTake() -> Bool {
        state.withLock { s in
            guard s.free > 0, s.reclaimers.isEmpty else { return false }
            s.free -= 1
            return true
        }
    }

    /// Whether a command that has ended may keep its slot for the next new command: only when no
    /// waiting command wants one back (as if it gave the slot back and took it again at once).
    func mayKeep() -> Bool {
        state.withLock { $0.reclaimers.isEmpty }
    }

    /// Gives a slot back: to the first command waiting to go on, else to new commands — and then,
    /// with `notify`, tells the run loop (a lent slot; a command's end is its own event).
    func give(notify: Bool = true) {
        let handed = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            if !s.reclaimers.isEmpty { return s.reclaimers.removeFirst().continuation }
            s.free += 1
            return nil
        }
        if let handed { handed.resume(returning: true) } else if notify { onFree() }
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
}

/// One command's hold on a slot, and its lender for the engine's waits (`BackoffScope`): a
/// retry's backoff, or another command's upload or cache creation. Only a command with one call
/// (and at most one file to upload) lends: its requests and waits go one at a time, so while
/// one waits the command does nothing else. Others keep their slot while they wait — safe,
/// because the work they wait for never needs a slot back (`SingleFlight`).
final class SlotTicket: BackoffLender {
    private let slots: Slots
    private let state = Mutex<(lends: Bool, holding: Bool)>((false, true))

    init(slots: Slots) { self.slots = slots }

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
        if lent { slots.give() }
    }

    func backoffEnded() async {
        guard state.withLock({ $0.lends && !$0.holding }) else { return }
        if await slots.reclaim() { state.withLock { $0.holding = true } }
    }

    /// At the command's end. A task may go on to the next queued command in the same slot: it
    /// gets `next()`'s command when it held its slot and no waiting command wants one back (as
    /// if it gave the slot back and took it again at once). Otherwise — nothing queued, or a
    /// command waiting — the slot goes back (to the waiting command first, else to the run loop,
    /// which is told) and the result is nil: the task ends. A ticket whose wait was cancelled
    /// holds no slot and gives none back.
    func finish<Item>(next: () -> Item?) -> Item? {
        guard release() else { return nil }
        if slots.mayKeep(), let item = next() { return item }
        slots.give()
        return nil
    }

    /// Whether the command held its slot; it holds none from now on.
    private func release() -> Bool {
        state.withLock { s -> Bool in
            defer { s.holding = false }
            return s.holding
        }
    }
}
