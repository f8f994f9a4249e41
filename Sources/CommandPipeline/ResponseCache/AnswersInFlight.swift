import Synchronization

/// Identical calls in flight share one request (`ResponseCacheUnit`): the first to miss the
/// cache makes the request; the others wait for its answer. A table under a `Mutex`, so a miss
/// with no twin in flight costs two short locks and no executor hop (an actor cost two hops
/// there and back on every miss).
///
/// The waits follow `SingleFlight`'s rules (`Design/resilience.md`, "What a waiting command
/// holds"): the maker makes the request with no `BackoffScope.lender` (its backoffs keep its
/// slot, it never needs a waiter's), and a waiter lends what it holds while it waits and takes
/// it back before going on. A waiter whose own task is cancelled stops waiting at once.
package final class AnswersInFlight: Sendable {
    package enum Outcome: Sendable {
        /// This call made the request; its result.
        case made(Result<GenerationResponse, APIError>)
        /// An identical call's answer.
        case shared(GenerationResponse)
        /// The identical call failed (not cancelled): this call makes its own (a failure names another command's call).
        case sharedFailure
        /// The identical call's answer is not shared (`share` refused it: a refusal the cache
        /// would not keep either): this call makes its own.
        case notShared
        /// The identical call was cancelled, or ended before this call could wait: look again.
        case again
        /// This call's own task was cancelled while it waited.
        case cancelled
    }

    private struct State {
        /// Waiters of each key being made, by number (so a cancelled one can be taken out).
        var flights: [ResponseCacheKey: [Int: CheckedContinuation<Outcome, Never>]] = [:]
        var lastWaiter = 0
    }

    private let state = Mutex(State())

    package init() {}

    /// Makes the answer for `key` with `make`, or waits for the identical call making it. The
    /// waiters take a successful answer only when `share` says so (twins share what the cache
    /// would keep, nothing else).
    package func answer(
        for key: ResponseCacheKey, share: (GenerationResponse) -> Bool = { _ in true }, make: () async -> Result<GenerationResponse, APIError>
    ) async -> Outcome {
        let waiter = state.withLock { state -> Int? in
            if state.flights[key] == nil {
                state.flights[key] = [:]
                return nil
            }
            state.lastWaiter &+= 1
            return state.lastWaiter
        }
        guard let waiter else {
            let result = await BackoffScope.$lender.withValue(nil) { await make() }
            let waiters = state.withLock { $0.flights.removeValue(forKey: key) } ?? [:]
            if !waiters.isEmpty {
                let outcome: Outcome
                switch result {
                case .success(let answer): outcome = share(answer) ? .shared(answer) : .notShared
                case .failure(let error): outcome = error.kind == .cancelled ? .again : .sharedFailure
                }
                for continuation in waiters.values { continuation.resume(returning: outcome) }
            }
            return .made(result)
        }
        let lender = BackoffScope.lender
        lender?.backoffStarted()
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                let early = state.withLock { state -> Outcome? in
                    if Task.isCancelled { return .cancelled }
                    guard state.flights[key] != nil else { return .again }
                    state.flights[key]?[waiter] = continuation
                    return nil
                }
                if let early { continuation.resume(returning: early) }
            }
        } onCancel: {
            state.withLock { $0.flights[key]?.removeValue(forKey: waiter) }?.resume(returning: .cancelled)
        }
        await lender?.backoffEnded()
        return outcome
    }

    /// Calls waiting for `key`'s answer while an identical call makes it (for tests).
    package func waiting(for key: ResponseCacheKey) -> Int { state.withLock { $0.flights[key]?.count ?? 0 } }
}
