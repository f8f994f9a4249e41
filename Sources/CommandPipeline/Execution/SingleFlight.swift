/// Makes each value once per key, however many tasks ask at the same time, and keeps
/// it until its deadline. The first asker makes the value in its own task (so its
/// cancellation is structured); the others wait. If the maker is cancelled, a waiter
/// takes over; if making fails, every waiter gets the error and the key is forgotten. A
/// waiter whose own task is cancelled stops waiting at once (`cancelled`); the work goes on.
///
/// No wait here can be part of a cycle (issue 27; `Design/resilience.md`, "What a waiting
/// command holds"):
/// - the maker makes the value with what it holds and gives none of it away: `make` runs with
///   no `BackoffScope.lender`, so its retries' backoffs keep the maker's `--concurrency` slot,
///   and it never needs another command's slot, nor waits for another flight, to finish;
/// - a waiter waits for work that needs nothing it holds, and tells its lender so (as for a
///   backoff): a command that lends gives its slot away for the wait and takes one back,
///   ahead of new commands, when the value (or the error) is there.
package actor SingleFlight<Key: Hashable & Sendable, Value: Sendable> {
    private enum Outcome: Sendable {
        case value(Value)
        case failure(APIError)
        case retry
        /// The waiter's own task was cancelled: it stopped waiting, the work goes on for the others.
        case cancelled
    }

    private enum Slot {
        case ready(Value, deadline: Duration?)
        /// Waiters by number, so a cancelled one can be taken out.
        case inFlight([Int: CheckedContinuation<Outcome, Never>])
    }

    private var slots: [Key: Slot] = [:]
    private var lastWaiter = 0

    package init() {}

    /// The value for `key` and whether it was made by someone else (`shared`).
    package func value(
        for key: Key, now: @Sendable () -> Duration,
        make: @concurrent @Sendable () async throws(APIError) -> (value: Value, deadline: Duration?)
    ) async throws(APIError) -> (value: Value, shared: Bool) {
        while true {
            switch slots[key] {
            case .ready(let value, let deadline):
                if let deadline, now() >= deadline {
                    slots[key] = nil
                    continue
                }
                return (value, true)
            case .inFlight:
                lastWaiter &+= 1
                let id = lastWaiter
                let lender = BackoffScope.lender
                lender?.backoffStarted()
                // A waiter's own deadline (or any cancellation of its task) ends its wait at once.
                let outcome = await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                        guard !Task.isCancelled, case .inFlight(var waiters) = slots[key] else {
                            continuation.resume(returning: Task.isCancelled ? Outcome.cancelled : Outcome.retry)
                            return
                        }
                        waiters[id] = continuation
                        slots[key] = .inFlight(waiters)
                    }
                } onCancel: {
                    Task { await self.stopWaiting(for: key, waiter: id) }
                }
                // Back in a slot before going on (and before making the value, on `.retry`).
                await lender?.backoffEnded()
                switch outcome {
                case .value(let value): return (value, true)
                case .failure(let error): throw error
                case .retry: continue
                case .cancelled: throw APIError(.cancelled, "the command was cancelled while it waited for work another command is making")
                }
            case nil:
                slots[key] = .inFlight([:])
                // Shared work keeps its maker's slot through every backoff: the waiters' wait must
                // never depend on a slot coming back.
                let result = await BackoffScope.$lender.withValue(nil) { () async -> Result<(value: Value, deadline: Duration?), APIError> in
                    do throws(APIError) { return .success(try await make()) } catch { return .failure(error) }
                }
                guard case .inFlight(let waiters) = slots[key] else { preconditionFailure("single-flight slot vanished") }
                switch result {
                case .success(let made):
                    slots[key] = .ready(made.value, deadline: made.deadline)
                    for waiter in waiters.values { waiter.resume(returning: .value(made.value)) }
                    return (made.value, false)
                case .failure(let error):
                    slots[key] = nil
                    let forWaiters: Outcome = error.kind == .cancelled ? .retry : .failure(error)
                    for waiter in waiters.values { waiter.resume(returning: forWaiters) }
                    throw error
                }
            }
        }
    }

    /// Takes a cancelled waiter out (if the work has not ended first) and lets it go.
    private func stopWaiting(for key: Key, waiter id: Int) {
        guard case .inFlight(var waiters) = slots[key], let continuation = waiters.removeValue(forKey: id) else { return }
        slots[key] = .inFlight(waiters)
        continuation.resume(returning: .cancelled)
    }

    /// Forgets `key`, so the next asker makes the value again.
    package func invalidate(_ key: Key) {
        if case .ready = slots[key] { slots[key] = nil }
    }

    /// Askers waiting for `key`'s value while someone makes it (for tests).
    package func waiting(for key: Key) -> Int {
        if case .inFlight(let waiters) = slots[key] { waiters.count } else { 0 }
    }
}
