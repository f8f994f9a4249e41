import Synchronization

/// The run loop's inbox: many senders (command tasks, the stdin reader, signal and output
/// watchers), one receiver that takes everything posted since its last look in one batch.
///
/// Why not `AsyncStream`: a stream hands over one element per `next()`, each behind the
/// stream's mutex, and resumes the receiver once per element. At 100,000 commands a second
/// the receiver and the senders fought over that mutex (futex sleeps and wake-ups were 14%
/// of a run's CPU). Here a sender appends under a short lock and wakes the receiver only when
/// it is parked; a receiver busy with one batch finds the next one waiting without a switch.
final class Mailbox<Message: Sendable>: Sendable {
    private struct State {
        var messages: [Message] = []
        /// The receiver, parked because the box was empty.
        var receiver: UnsafeContinuation<[Message], Never>?
    }

    private let state = Mutex(State())

    init() {}

    /// Posts one message; never blocks beyond the lock, never fails.
    func post(_ message: Message) {
        let parked: UnsafeContinuation<[Message], Never>? = state.withLock { state in
            if let receiver = state.receiver {
                state.receiver = nil
                return receiver
            }
            state.messages.append(message)
            return nil
        }
        parked?.resume(returning: [message])
    }

    /// Everything posted since the last call, in the order posted (per sender); waits while
    /// there is nothing. One receiver at a time. The wait ends only with a message: a run
    /// loop is ended by what it receives, not by cancellation.
    func receive() async -> [Message] {
        if let ready = takeAll() { return ready }
        return await withUnsafeContinuation { continuation in
            let ready: [Message]? = state.withLock { state in
                guard state.messages.isEmpty else { return Self.drain(&state) }
                state.receiver = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func takeAll() -> [Message]? {
        state.withLock { state in state.messages.isEmpty ? nil : Self.drain(&state) }
    }

    private static func drain(_ state: inout State) -> [Message] {
        let batch = state.messages
        // The next batch grows into a buffer of the same size rather than from nothing.
        state.messages = []
        state.messages.reserveCapacity(batch.count)
        return batch
    }
}
