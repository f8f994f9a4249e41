import CommandPipeline
import Synchronization

/// Commands read but not started, in input order: the run loop adds them as input arrives,
/// and command tasks take them — the run loop when it starts a task, and a task itself when
/// its command has ended and it may keep its slot (`SlotTicket.finish(next:)`). A task
/// that goes on to the next command instead of ending saves a task's creation and the
/// growth of its stack each time (about a third of the CLI's allocations per command).
final class CommandQueue: Sendable {
    struct Item: Sendable {
        var piece: JSONStreamSplitter.Piece
        var index: Int
        /// Skipped under `--resume` (decided in input order, when it was added).
        var skip: Bool
    }

    private struct State {
        var items: [Item] = []
        var head = 0
        /// Items taken since the start: with the commands finished, what is in flight.
        var taken = 0
        var stopped = false
    }

    private let state = Mutex(State())

    func append(_ items: [Item]) {
        state.withLock { $0.items.append(contentsOf: items) }
    }

    /// The next command to start, or nil when there is none or taking has stopped.
    func take() -> Item? {
        state.withLock { s in
            guard !s.stopped, s.head < s.items.count else { return nil }
            let item = s.items[s.head]
            s.head += 1
            s.taken += 1
            if s.head == s.items.count {
                s.items.removeAll(keepingCapacity: true)
                s.head = 0
            } else if s.head >= 1024 && s.head * 2 >= s.items.count {
                // The queue rarely drains while input streams in: drop the started prefix.
                s.items.removeFirst(s.head)
                s.head = 0
            }
            return item
        }
    }

    /// No command is taken from now on (an interrupt, or output that failed).
    func stop() { state.withLock { $0.stopped = true } }

    /// Commands taken so far, and whether none is left to take.
    var progress: (taken: Int, empty: Bool) {
        state.withLock { ($0.taken, $0.head == $0.items.count) }
    }
}
