import Synchronization

/// The events of one command as `PipelineEngine.events(for:)` gives them: an `AsyncSequence`
/// with ONE reader.
///
/// - The command starts when the sequence is first iterated (`makeAsyncIterator`, which
///   `for await` calls), not when it is made: a sequence never iterated runs nothing.
/// - It ends when its reader stops reading: when the loop ends early (`break`, `return`, a
///   thrown error — the loop's iterator is released, though the sequence is still in scope) or
///   when the reading task is cancelled. The command is then cancelled at once and ends
///   `cancelled`; no call is started after it.
/// - One reader: only the first iterator made sees the command. Every later one — a second
///   loop over the same sequence, a second task reading it, a loop after the first finished —
///   ends at once without an event. To watch a command twice, run it twice (`events(for:)`
///   again) or fan its events out yourself.
package struct CommandEvents: AsyncSequence, Sendable {

    private let start: @Sendable (_ observer: @escaping @Sendable (PipelineEvent) -> Void) async -> Void
    private let claim = Claim()

    /// `start` runs the command, handing every event to its observer, and returns when it is done.
    init(start: @escaping @Sendable (_ observer: @escaping @Sendable (PipelineEvent) -> Void) async -> Void) {
        self.start = start
    }

    public func makeAsyncIterator() -> Iterator {
        guard claim.take() else { return Iterator(events: nil) }
        let (events, continuation) = AsyncStream.makeStream(of: PipelineEvent.self)
        let start = start
        let task = Task {
            await start { continuation.yield($0) }
            continuation.finish()
        }
        // The stream ends — and the command is cancelled — when its reading task is cancelled,
        // or when its storage goes: the iterator returned is its only owner (the stream itself
        // is dropped here), so leaving the loop releases it. Were the stream kept (in this
        // sequence, say), a `break` would leave the command running until the sequence went.
        continuation.onTermination = { _ in task.cancel() }
        return Iterator(events: events.makeAsyncIterator())
    }

    /// Reads the command's events; releasing it (leaving the loop) cancels the command.
    package struct Iterator: AsyncIteratorProtocol {

        private var events: AsyncStream<PipelineEvent>.Iterator?

        fileprivate init(events: AsyncStream<PipelineEvent>.Iterator?) { self.events = events }

        public mutating func next() async -> PipelineEvent? { await next(isolation: #isolation) }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> PipelineEvent? {
            await events?.next(isolation: actor)
        }
    }

    /// Whether an iterator was made already (the first one takes the command).
    private final class Claim: Sendable {
        private let taken = Atomic(false)
        /// True exactly once.
        func take() -> Bool { !taken.exchange(true, ordering: .relaxed) }
    }
}
