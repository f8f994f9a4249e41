import Dispatch
import Foundation
import Testing
@testable import pipeline

/// The gate between the CLI's reader thread (which blocks) and its run loop (which never does).
@Suite struct CreditGateTests {
    /// Runs `acquire` on its own thread; `done` is signalled when it returns.
    func acquiring(_ gate: CreditGate, _ n: Int) -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        Thread { gate.acquire(n); done.signal() }.start()
        return done
    }

    /// Polls between yields, boundedly.
    func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<1_000_000 where !condition() { await Task.yield() }
        return condition()
    }

    @Test func anAcquireBlocksUntilEnoughCreditsComeBack() async {
        let gate = CreditGate(credits: 4)
        gate.acquire(3)
        #expect(gate.available == 1)
        let done = acquiring(gate, 2)
        #expect(await eventually { gate.hasWaiter }, "2 credits wanted, 1 free: the reader waits")
        #expect(done.wait(timeout: .now()) == .timedOut)
        gate.release(1)
        #expect(done.wait(timeout: .now() + 30) == .success, "2 free now: the reader goes on")
        #expect(gate.available == 0 && !gate.hasWaiter)
    }

    @Test func aRequestLargerThanTheWindowWaitsForEveryCredit() async {
        let gate = CreditGate(credits: 4)
        gate.acquire(1)
        let done = acquiring(gate, 10)
        #expect(await eventually { gate.hasWaiter })
        gate.release(1)
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(gate.available == -6, "a big value takes what it needs; credits come back as results are written")
    }

    @Test func openingLetsEveryAcquireThrough() async {
        let gate = CreditGate(credits: 1)
        gate.acquire(1)
        let done = acquiring(gate, 1)
        #expect(await eventually { gate.hasWaiter })
        gate.open()
        #expect(done.wait(timeout: .now() + 30) == .success)
        gate.acquire(100)  // returns at once once open
        #expect(!gate.hasWaiter)
    }
}
