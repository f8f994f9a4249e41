import Synchronization

/// Fires callbacks at deadlines on a `PipelineClock` with a single sleeping task.
///
/// A timeout per command or per call could be a `clock.sleep` raced against the work, but a
/// cancelled sleep keeps its timer until the original deadline (measured: ~65 bytes each),
/// so a run of a million commands with `--timeout 300` would hold every timer for five
/// minutes. Here only the deadlines of work still in flight are kept; finished work removes
/// its entry, and one task sleeps until the earliest remaining deadline.
package final class DeadlineScheduler: Sendable {
    package struct Token: Sendable, Hashable {
        fileprivate let id: Int
        fileprivate let deadline: Duration
    }

    private struct Entry {
        let id: Int
        let deadline: Duration
        let fire: @Sendable () -> Void
    }

    private struct State {
        var entries: [Entry] = []         // sorted by deadline, then id
        var nextID = 0
        var armed: Duration?              // what the sleeper sleeps until; nil when there is no sleeper
        var generation = 0
        var sleeper: Task<Void, Never>?

        func insertionIndex(_ deadline: Duration, _ id: Int) -> Int {
            var low = 0, high = entries.count
            while low < high {
                let mid = (low + high) / 2
                if (entries[mid].deadline, entries[mid].id) < (deadline, id) { low = mid + 1 } else { high = mid }
            }
            return low
        }
    }

    private let clock: any PipelineClock
    private let state = Mutex(State())

    package init(clock: any PipelineClock) { self.clock = clock }

    /// Calls `fire` once at `deadline`, unless cancelled first.
    package func schedule(at deadline: Duration, _ fire: @escaping @Sendable () -> Void) -> Token {
        state.withLock { s in
            s.nextID += 1
            let entry = Entry(id: s.nextID, deadline: deadline, fire: fire)
            s.entries.insert(entry, at: s.insertionIndex(deadline, entry.id))
            if s.armed == nil || deadline < s.armed! {
                // Earlier than the sleeper's target (rare with equal timeouts): start a new sleeper.
                s.sleeper?.cancel()
                s.armed = deadline
                s.generation += 1
                let generation = s.generation
                s.sleeper = Task { await self.sleep(generation) }
            }
            return Token(id: entry.id, deadline: deadline)
        }
    }

    /// Forgets a deadline that is no longer needed.
    package func cancel(_ token: Token) {
        state.withLock { s in
            let index = s.insertionIndex(token.deadline, token.id)
            if index < s.entries.count && s.entries[index].id == token.id { s.entries.remove(at: index) }
        }
    }

    /// Deadlines waiting to fire (for tests and diagnostics).
    package var pendingCount: Int { state.withLock { $0.entries.count } }

    private func sleep(_ generation: Int) async {
        while true {
            guard let target = state.withLock({ s in s.generation == generation ? s.armed : nil }) else { return }
            do { try await clock.sleep(until: target) } catch { return }  // replaced by an earlier target
            let now = clock.now
            let due: [Entry]? = state.withLock { s in
                guard s.generation == generation else { return nil }
                let split = s.entries.firstIndex { $0.deadline > now } ?? s.entries.count
                let due = Array(s.entries[..<split])
                s.entries.removeFirst(split)
                s.armed = s.entries.first?.deadline
                if s.armed == nil { s.sleeper = nil }
                return due
            }
            guard let due else { return }
            for entry in due { entry.fire() }
        }
    }
}

extension DeadlineScheduler {
    package enum Raced<T: Sendable>: Sendable {
        case finished(T)
        /// The deadline passed: `body` was cancelled and this is what it returned then.
        case expired(T)
    }

    /// Runs `body`; if `duration` passes first, cancels it (structured: everything it started
    /// stops) and returns what it gave back after cancellation.
    package func race<T: Sendable>(_ duration: Duration, _ body: @escaping @Sendable () async -> T) async -> Raced<T> {
        let latch = Latch()
        let token = schedule(at: clock.now + duration) { latch.open() }
        return await withTaskGroup(of: RaceEvent<T>.self) { group in
            group.addTask { .finished(await body()) }
            group.addTask { await latch.wait() ? .deadline : .stopped }
            var expired = false
            while let event = await group.next() {
                switch event {
                case .finished(let value):
                    cancel(token)
                    group.cancelAll()
                    return expired ? .expired(value) : .finished(value)
                case .deadline:
                    expired = true
                    group.cancelAll()
                case .stopped:
                    continue
                }
            }
            preconditionFailure("the body of a deadline race always finishes")
        }
    }
}

enum RaceEvent<T: Sendable>: Sendable {
    case finished(T)
    case deadline
    case stopped
}
