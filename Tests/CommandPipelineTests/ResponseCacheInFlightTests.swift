import CommandPipeline
import Foundation
import Synchronization
import Testing

/// The response cache's fast path: identical calls in flight (`AnswersInFlight`, a `Mutex`
/// table) and the key's hash (`SHA256`, a block at a time).
@Suite struct ResponseCacheInFlightTests {
    static let key = ResponseCacheKey(digest: "k")
    static let answer = GenerationResponse(text: "made", model: "m", usage: Usage(promptTokens: 1, completionTokens: 1))

    /// Waits (bounded, yielding) until `count` calls wait for the key.
    static func waiters(_ flights: AnswersInFlight, _ count: Int) async -> Bool {
        for _ in 0..<2_000_000 {
            if flights.waiting(for: key) == count { return true }
            await Task.yield()
        }
        return false
    }

    enum Seen: Equatable { case made(String?), shared(String), sharedFailure, notShared, again, cancelled }

    static func seen(_ outcome: AnswersInFlight.Outcome) -> Seen {
        switch outcome {
        case .made(let result): .made(try? result.get().text)
        case .shared(let answer): .shared(answer.text)
        case .sharedFailure: .sharedFailure
        case .notShared: .notShared
        case .again: .again
        case .cancelled: .cancelled
        }
    }

    @Test func waitersTakeTheMakersAnswerAndTheTableEmpties() async {
        let flights = AnswersInFlight()
        let gate = Latch()
        let made = Atomic<Int>(0)
        let maker = Task {
            Self.seen(await flights.answer(for: Self.key) {
                made.add(1, ordering: .relaxed)
                _ = await gate.wait()
                return .success(Self.answer)
            })
        }
        // The maker is in the table once a waiter can join it: start the waiters after it made its entry.
        for _ in 0..<2_000_000 where made.load(ordering: .relaxed) == 0 { await Task.yield() }
        let waiters = (0..<3).map { _ in Task { Self.seen(await flights.answer(for: Self.key) { .success(GenerationResponse(text: "own", model: "m", usage: .zero)) }) } }
        #expect(await Self.waiters(flights, 3))
        gate.open()
        #expect(await maker.value == .made("made"))
        for waiter in waiters { #expect(await waiter.value == .shared("made")) }
        #expect(made.load(ordering: .relaxed) == 1)
        // Nothing is kept: the next call makes its own.
        #expect(Self.seen(await flights.answer(for: Self.key) { .success(GenerationResponse(text: "again", model: "m", usage: .zero)) }) == .made("again"))
    }

    /// A success `share` refuses (a refusal the cache would not keep) is not handed to the
    /// waiters: they make their own.
    @Test func anAnswerNotToShareSendsTheWaitersToMakeTheirOwn() async {
        let flights = AnswersInFlight()
        let gate = Latch()
        let made = Atomic<Int>(0)
        let refusal = GenerationResponse(text: "", model: "m", finishReason: "content_filter", usage: .zero)
        let share: @Sendable (GenerationResponse) -> Bool = { $0.finishReason != "content_filter" }
        let maker = Task {
            Self.seen(await flights.answer(for: Self.key, share: share) {
                made.add(1, ordering: .relaxed)
                _ = await gate.wait()
                return .success(refusal)
            })
        }
        for _ in 0..<2_000_000 where made.load(ordering: .relaxed) == 0 { await Task.yield() }
        let waiters = (0..<2).map { _ in Task { Self.seen(await flights.answer(for: Self.key, share: share) { .success(Self.answer) }) } }
        #expect(await Self.waiters(flights, 2))
        gate.open()
        #expect(await maker.value == .made(""))
        for waiter in waiters { #expect(await waiter.value == .notShared) }
    }

    @Test func aFailureIsNotSharedAndACancelledWaiterStopsAtOnce() async {
        let flights = AnswersInFlight()
        let gate = Latch()
        let started = Atomic<Bool>(false)
        let maker = Task {
            Self.seen(await flights.answer(for: Self.key) {
                started.store(true, ordering: .relaxed)
                _ = await gate.wait()
                return .failure(APIError(.providerError, "boom"))
            })
        }
        for _ in 0..<2_000_000 where !started.load(ordering: .relaxed) { await Task.yield() }
        let patient = Task { Self.seen(await flights.answer(for: Self.key) { .success(Self.answer) }) }
        let impatient = Task { Self.seen(await flights.answer(for: Self.key) { .success(Self.answer) }) }
        #expect(await Self.waiters(flights, 2))
        impatient.cancel()
        #expect(await impatient.value == .cancelled, "a cancelled waiter does not wait for the maker")
        #expect(await Self.waiters(flights, 1))
        gate.open()
        #expect(await maker.value == Seen.made(nil))
        #expect(await patient.value == .sharedFailure, "another command's failure is not this one's: it makes its own call")
    }

    @Test func aCancelledMakerSendsItsWaitersToLookAgain() async {
        let flights = AnswersInFlight()
        let gate = Latch()
        let started = Atomic<Bool>(false)
        let maker = Task {
            Self.seen(await flights.answer(for: Self.key) {
                started.store(true, ordering: .relaxed)
                _ = await gate.wait()
                return .failure(APIError(.cancelled, "cancelled"))
            })
        }
        for _ in 0..<2_000_000 where !started.load(ordering: .relaxed) { await Task.yield() }
        let waiter = Task { Self.seen(await flights.answer(for: Self.key) { .success(Self.answer) }) }
        #expect(await Self.waiters(flights, 1))
        gate.open()
        #expect(await maker.value == Seen.made(nil))
        #expect(await waiter.value == .again)
    }

    /// Any split of the input gives the digest of the whole (the block path and the tail buffer
    /// meet at every offset), and a sequence that is not contiguous gives the same.
    @Test func sha256IsTheSameHoweverTheBytesArrive() {
        let bytes = (0..<1_000).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ $0 >> 3) }
        let whole = SHA256.hex(bytes)
        #expect(SHA256.hex(bytes.lazy.map { $0 }) == whole)
        for step in [1, 3, 55, 56, 63, 64, 65, 127, 128, 129, 999] {
            var hasher = SHA256()
            var i = 0
            while i < bytes.count {
                hasher.update(bytes[i..<min(bytes.count, i + step)])
                i += step
            }
            #expect(hasher.finalizeHex() == whole, "chunks of \(step)")
        }
        // FIPS 180-4 vectors: one block, two blocks (56 bytes: the length does not fit), a million bytes.
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var text = SHA256()
        text.update("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
        #expect(text.finalizeHex() == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
