import Foundation
import Synchronization

/// A `ResponseCache` in memory, for one process: tests, and a library user who wants identical
/// calls of one run answered once. Entries older than `ttl` are misses; past `maxBytes` (each
/// entry counted as its key and its stored form) the oldest are dropped first.
public final class InMemoryResponseCache: ResponseCache {
    public let maxBytes: Int
    public let ttl: Duration?
    private let now: @Sendable () -> Date
    private let state = Mutex(State())

    private struct Entry {
        var answer: GenerationResponse
        var bytes: Int
        var storedAt: Date
        var sequence: Int
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Keys in the order they were stored (a key stored again is further back; its old place is skipped).
        var order: [(key: String, sequence: Int)] = []
        var head = 0
        var bytes = 0
        var sequence = 0
        var hits = 0
    }

    /// - Parameters:
    ///   - maxBytes: the entries' size at most (at least 1).
    ///   - ttl: how long an answer stays fresh; nil: forever.
    ///   - now: the wall clock (tests pass their own).
    public init(maxBytes: Int = 256 << 20, ttl: Duration? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        self.maxBytes = max(1, maxBytes)
        self.ttl = ttl
        self.now = now
    }

    public func answer(for key: String) -> GenerationResponse? {
        let now = self.now()
        return state.withLock { state in
            guard let entry = state.entries[key], ResponseCacheAge.isFresh(storedAt: entry.storedAt, now: now, ttl: ttl) else { return nil }
            state.hits += 1
            return entry.answer
        }
    }

    public func store(_ answer: GenerationResponse, for key: String) {
        let bytes = key.utf8.count.addingSaturating(CachedAnswer.encode(answer).count)
        let storedAt = now()
        state.withLock { state in
            state.sequence += 1
            if let old = state.entries[key] { state.bytes -= old.bytes }
            state.entries[key] = Entry(answer: answer, bytes: bytes, storedAt: storedAt, sequence: state.sequence)
            state.order.append((key, state.sequence))
            state.bytes = state.bytes.addingSaturating(bytes)
            // Oldest first out, until the bound holds.
            while state.bytes > maxBytes, state.head < state.order.count {
                let (oldKey, sequence) = state.order[state.head]
                state.head += 1
                if let entry = state.entries[oldKey], entry.sequence == sequence {
                    state.entries[oldKey] = nil
                    state.bytes -= entry.bytes
                }
            }
            if state.head > 1024 && state.head * 2 > state.order.count {
                state.order.removeFirst(state.head)
                state.head = 0
            }
        }
    }

    /// Entries held, their size, and the answers given so far.
    public var statistics: (entries: Int, bytes: Int, hits: Int) { state.withLock { ($0.entries.count, $0.bytes, $0.hits) } }
}

/// The one rule for an entry's age: fresh while younger than the TTL (or always, without one).
package enum ResponseCacheAge {
    package static func isFresh(storedAt: Date, now: Date, ttl: Duration?) -> Bool {
        guard let ttl else { return true }
        return now.timeIntervalSince(storedAt) < ttl.inSeconds
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    package var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
