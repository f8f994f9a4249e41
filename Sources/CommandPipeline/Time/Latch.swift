import Synchronization

/// A one-shot gate a task can wait on until it is opened or the task is cancelled — with
/// no timer behind it, so waiting costs nothing until one of the two happens.
package final class Latch: Sendable {
    private struct State {
        var opened = false
        var cancelled = false
        var waiter: CheckedContinuation<Bool, Never>?
    }

    private let state = Mutex(State())

    package init() {}

    /// Opens the latch: the waiter (now or later) gets `true`.
    package func open() {
        let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            s.opened = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: true)
    }

    /// `true` once opened; `false` as soon as the waiting task is cancelled.
    package func wait() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now: Bool? = state.withLock { s in
                    if s.opened { return true }
                    if s.cancelled { return false }
                    s.waiter = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
                s.cancelled = true
                defer { s.waiter = nil }
                return s.opened ? nil : s.waiter
            }
            waiter?.resume(returning: false)
        }
    }

    /// Suspends until the task is cancelled, then throws `CancellationError`.
    package static func waitForCancellation() async throws {
        _ = await Latch().wait()
        throw CancellationError()
    }
}
