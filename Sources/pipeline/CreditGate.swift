import Dispatch
import Synchronization

/// A counting gate between the reader thread (which blocks) and the run loop (which never does).
final class CreditGate: Sendable {
    private struct State {
        var credits: Int
        var waitingFor: Int?
        var open = false
    }

    private let state: Mutex<State>
    private let wake = DispatchSemaphore(value: 0)
    private let capacity: Int

    init(credits: Int) {
        state = Mutex(State(credits: credits))
        capacity = credits
    }

    /// Blocks the calling thread until `n` credits are free, then takes them. A request larger
    /// than the whole window waits until every credit is back (credits then go below zero).
    func acquire(_ n: Int) {
        let needed = min(n, capacity)
        while true {
            let taken = state.withLock { s -> Bool in
                if s.open || s.credits >= needed {
                    s.credits -= n
                    return true
                }
                s.waitingFor = needed
                return false
            }
            if taken { return }
            wake.wait()
        }
    }

    /// Gives back `n` credits, waking the reader when it can go on.
    func release(_ n: Int) {
        let wakeReader = state.withLock { s -> Bool in
            s.credits += n
            if let needed = s.waitingFor, s.credits >= needed {
                s.waitingFor = nil
                return true
            }
            return false
        }
        if wakeReader { wake.signal() }
    }

    /// Whether a thread is blocked in `acquire` (for tests).
    var hasWaiter: Bool { state.withLock { $0.waitingFor != nil } }

    /// Credits not taken (negative after a request larger than the window).
    var available: Int { state.withLock { $0.credits } }

    /// Lets every acquire through from now on (used when stopping).
    func open() {
        let wakeReader = state.withLock { s -> Bool in
            s.open = true
            defer { s.waitingFor = nil }
            return s.waitingFor != nil
        }
        if wakeReader { wake.signal() }
    }
}
