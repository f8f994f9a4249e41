import CommandPipeline
import Synchronization
import Testing

/// Polls `condition` between task yields, at most `limit` times: a regression fails, it does not hang.
func eventually(_ limit: Int = 1_000_000, _ condition: () async -> Bool) async -> Bool {
    for _ in 0..<limit {
        if await condition() { return true }
        await Task.yield()
    }
    return await condition()
}

/// A value shared across tasks and closures.
final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
}

/// Counts how often something happened, across tasks.
final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

@Suite struct SingleFlightTests {
    let boom = APIError(.providerError, "boom", provider: "test")

    @Test func concurrentAskersShareOneMaking() async throws {
        let flight = SingleFlight<String, Int>()
        let makes = Counter()
        let gate = Latch()
        let first = Task {
            try await flight.value(for: "k", now: { .zero }) { () async throws(APIError) -> (value: Int, deadline: Duration?) in
                makes.add()
                _ = await gate.wait()
                return (42, nil)
            }
        }
        #expect(await eventually { makes.value == 1 })
        let others = (0..<9).map { _ in
            Task { try await flight.value(for: "k", now: { .zero }) { () async throws(APIError) -> (value: Int, deadline: Duration?) in makes.add(); return (0, nil) } }
        }
        #expect(await eventually { await flight.waiting(for: "k") == 9 }, "the others wait for the one making it")
        gate.open()
        let made = try await first.value
        #expect(made.value == 42 && !made.shared)
        for other in others {
            let got = try await other.value
            #expect(got.value == 42 && got.shared)
        }
        #expect(makes.value == 1)
    }

    @Test func whenTheMakerIsCancelledAWaiterTakesOver() async throws {
        let flight = SingleFlight<String, String>()
        let started = Counter()
        let maker = Task {
            try await flight.value(for: "k", now: { .zero }) { () async throws(APIError) -> (value: String, deadline: Duration?) in
                started.add()
                _ = await Latch().wait()  // until cancelled
                throw APIError(.cancelled, "maker cancelled")
            }
        }
        #expect(await eventually { started.value == 1 })
        let waiter = Task {
            try await flight.value(for: "k", now: { .zero }) { () async throws(APIError) -> (value: String, deadline: Duration?) in ("made by the waiter", nil) }
        }
        #expect(await eventually { await flight.waiting(for: "k") == 1 })
        maker.cancel()
        await #expect(throws: APIError.self) { try await maker.value }
        let got = try await waiter.value
        #expect(got.value == "made by the waiter" && !got.shared, "the waiter made it itself instead of inheriting the cancellation")
    }

    @Test func aFailureReachesEveryWaiterAndIsForgotten() async throws {
        let flight = SingleFlight<String, Int>()
        let gate = Latch()
        let makes = Counter()
        let boom = self.boom
        let maker = Task {
            try await flight.value(for: "k", now: { .zero }) { () async throws(APIError) -> (value: Int, deadline: Duration?) in
                makes.add()
                _ = await gate.wait()
                throw boom
            }
        }
        #expect(await eventually { makes.value == 1 })
        let waiter = Task { try await flight.value(for: "k", now: { .zero }) { () async throws(APIError) -> (value: Int, deadline: Duration?) in (1, nil) } }
        #expect(await eventually { await flight.waiting(for: "k") == 1 })
        gate.open()
        await #expect(throws: APIError.self) { try await maker.value }
        do {
            _ = try await waiter.value
            Issue.record("the waiter did not get the maker's failure")
        } catch let error as APIError {
            #expect(error.message == "boom")
        }
        let again = try await flight.value(for: "k", now: { .zero }) { () async throws(APIError) -> (value: Int, deadline: Duration?) in makes.add(); return (7, nil) }
        #expect(again.value == 7 && makes.value == 2, "a failed key is made again by the next asker")
    }

    @Test func aValueLastsUntilItsDeadlineOrUntilInvalidated() async throws {
        let flight = SingleFlight<String, Int>()
        let now = Shared(Duration.zero)
        let makes = Counter()
        func ask() async throws -> (value: Int, shared: Bool) {
            try await flight.value(for: "k", now: { now.withLock { $0 } }) { () async throws(APIError) -> (value: Int, deadline: Duration?) in
                makes.add()
                return (makes.value, .seconds(10))
            }
        }
        #expect(try await ask() == (1, false))
        now.withLock { $0 = .seconds(9) }
        #expect(try await ask() == (1, true))
        now.withLock { $0 = .seconds(10) }
        #expect(try await ask() == (2, false), "expired at its deadline")
        await flight.invalidate("k")
        #expect(try await ask() == (3, false))
    }
}

@Suite struct DeadlineSchedulerTests {
    @Test func workThatFinishesInTimeIsNotCancelledAndLeavesNoDeadline() async {
        let clock = ManualClock()
        let scheduler = DeadlineScheduler(clock: clock)
        let raced = await scheduler.race(.seconds(5)) { "done" }
        guard case .finished("done") = raced else { Issue.record("\(raced)"); return }
        #expect(scheduler.pendingCount == 0)
    }

    @Test func pastTheDeadlineTheBodyIsCancelledAndItsAnswerKept() async throws {
        let clock = ManualClock()
        let scheduler = DeadlineScheduler(clock: clock)
        let race = Task {
            await scheduler.race(.seconds(10)) { () async -> String in
                do { try await clock.sleep(for: .seconds(100)); return "slept" } catch { return "cancelled" }
            }
        }
        // Two sleepers: the body and the scheduler's one timer.
        await clock.waitForSleepers(2)
        clock.advance(by: .seconds(9))
        #expect(clock.sleeperCount == 2, "nothing fires before the deadline")
        clock.advance(by: .seconds(1))
        let raced = await race.value
        guard case .expired("cancelled") = raced else { Issue.record("\(raced)"); return }
        #expect(scheduler.pendingCount == 0)
    }

    @Test func deadlinesFireInTheirOrderWhateverTheOrderTheyWereSet() async throws {
        let clock = ManualClock()
        let scheduler = DeadlineScheduler(clock: clock)
        let fired = Shared<[Int]>([])
        for seconds in [30, 10, 20] {
            _ = scheduler.schedule(at: .seconds(seconds)) { fired.withLock { $0.append(seconds) } }
        }
        #expect(scheduler.pendingCount == 3)
        for (step, expected) in [(10, [10]), (10, [10, 20]), (10, [10, 20, 30])] {
            clock.advance(by: .seconds(step))
            #expect(await eventually { fired.withLock { $0 } == expected }, "after \(step) s more: \(fired.withLock { $0 })")
        }
        #expect(scheduler.pendingCount == 0)
    }

    @Test func aCancelledDeadlineNeverFires() async throws {
        let clock = ManualClock()
        let scheduler = DeadlineScheduler(clock: clock)
        let fired = Counter()
        let token = scheduler.schedule(at: .seconds(5)) { fired.add() }
        let kept = scheduler.schedule(at: .seconds(6)) { fired.add() }
        scheduler.cancel(token)
        #expect(scheduler.pendingCount == 1)
        clock.advance(by: .seconds(6))
        #expect(await eventually { fired.value == 1 })
        _ = kept
    }
}

@Suite struct LatchTests {
    @Test func openedBeforeOrAfterWaitingTheWaiterPasses() async {
        let early = Latch()
        early.open()
        #expect(await early.wait())
        let late = Latch()
        let waiter = Task { await late.wait() }
        await Task.yield()
        late.open()
        #expect(await waiter.value)
    }

    @Test func cancellingTheWaiterEndsItsWaitWithFalse() async {
        let latch = Latch()
        let waiter = Task { await latch.wait() }
        waiter.cancel()
        #expect(await waiter.value == false)
        latch.open()  // opening later changes nothing for the cancelled wait
    }
}

@Suite struct ManualClockTests {
    @Test func sleepersWakeAtTheirDeadlinesInOrder() async throws {
        let clock = ManualClock()
        let woke = Shared<[Int]>([])
        let sleepers = [3, 1, 2].map { seconds in
            Task {
                try await clock.sleep(for: .seconds(seconds))
                woke.withLock { $0.append(seconds) }
            }
        }
        await clock.waitForSleepers(3)
        clock.advance(by: .seconds(1))
        #expect(await eventually { woke.withLock { $0 } == [1] })
        clock.advance(by: .seconds(2))
        for sleeper in sleepers { try await sleeper.value }
        #expect(woke.withLock { $0 }.sorted() == [1, 2, 3] && woke.withLock { $0 }.first == 1)
        #expect(clock.now == .seconds(3))
    }

    @Test func aCancelledSleeperWakesAtOnceWithAnError() async throws {
        let clock = ManualClock()
        let sleeper = Task { try await clock.sleep(for: .seconds(60)) }
        await clock.waitForSleepers(1)
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.sleeperCount == 0)
    }
}

/// The real clock, without sleeping on it: readings start near its origin and never go back,
/// they agree with `ContinuousClock` (which it reads directly on Linux), and a deadline already
/// past is no wait.
@Suite struct SystemClockTests {
    @Test func readingsNeverGoBackAndAgreeWithContinuousClock() async throws {
        let reference = ContinuousClock()
        let before = reference.now
        let clock = SystemClock()
        let first = clock.now
        #expect(first >= .zero && first < .seconds(1))
        var last = first
        for _ in 0..<10_000 {
            let now = clock.now
            #expect(now >= last)
            last = now
        }
        let elapsed = before.duration(to: reference.now)
        #expect(last <= elapsed, "no more time passed on SystemClock than on ContinuousClock around it")
        // A deadline in the past is no wait: it returns without throwing (were it read as a far
        // future instant, the test would hang until its time limit).
        try await clock.sleep(until: clock.now - .seconds(10))
    }
}
