import CommandPipeline
import Foundation
import Synchronization
import Testing

@testable import pipeline

/// `--concurrency` slots (issue 12 item 5): a command waiting out a retry's backoff lends its
/// slot and takes one back, before new commands, when the wait is over.
@Suite struct SlotsTests {
    final class Count: Sendable {
        let value = Atomic<Int>(0)
    }

    func command(calls: Int) -> PlannedCommand {
        PlannedCommand(id: "c", plan: ExecutionPlan(calls: (0..<calls).map { _ in APICall(model: "m", parts: [.text("x")]) }))
    }

    @Test func aWaitingCommandLendsItsSlotAndGetsOneBackFirst() async {
        let freed = Count()
        let slots = Slots(1) { freed.value.add(1, ordering: .relaxed) }
        let waiting = SlotTicket(slots: slots)
        #expect(slots.tryTake(), "the first command takes the one slot")
        waiting.allowLending(for: command(calls: 1))
        #expect(!slots.tryTake(), "no second slot")
        waiting.backoffStarted()
        #expect(freed.value.load(ordering: .relaxed) == 1, "lending tells the run loop a slot is free")
        #expect(slots.tryTake(), "a new command runs in the lent slot")
        // The wait ends while the new command works: it waits for a slot, ahead of new commands.
        let resumed = Count()
        let back = Task {
            await waiting.backoffEnded()
            resumed.value.store(1, ordering: .releasing)
        }
        for _ in 0..<100 { await Task.yield() }
        #expect(resumed.value.load(ordering: .acquiring) == 0, "no slot yet: the new command holds it")
        #expect(!slots.tryTake())
        slots.give()   // the new command ends: its slot goes to the waiting one
        var yields = 0
        while resumed.value.load(ordering: .acquiring) == 0 && yields < 1_000_000 {
            yields += 1
            await Task.yield()
        }
        #expect(resumed.value.load(ordering: .acquiring) == 1, "the waiting command went on")
        #expect(!slots.tryTake(), "the slot went to the command that waited, not to a new one")
        back.cancel()
        #expect(waiting.finish(next: { nil as Int? }) == nil, "nothing queued: the task ends")
        #expect(slots.tryTake(), "and comes back when that command ends")
    }

    /// A task whose command ended goes on to the next queued command in the same slot, unless a
    /// waiting command wants a slot back: then the slot goes to it and the task ends.
    @Test func anEndedCommandKeepsItsSlotForTheNextOneOnlyWhenNobodyWaits() async {
        let freed = Count()
        let slots = Slots(1) { freed.value.add(1, ordering: .relaxed) }
        #expect(slots.tryTake())
        let first = SlotTicket(slots: slots)
        #expect(first.finish(next: { 7 }) == 7, "nobody waits: the slot is kept for the next command")
        #expect(!slots.tryTake(), "kept, not given back")
        #expect(first.finish(next: { 8 }) == nil, "a ticket holds its slot once")
        // A command in backoff (holding no slot) now wants one back.
        let waiting = SlotTicket(slots: slots)
        waiting.allowLending(for: command(calls: 1))
        slots.give(notify: false)
        #expect(slots.tryTake())
        waiting.backoffStarted()   // lends: the slot is free again
        #expect(slots.tryTake(), "a new command runs in the lent slot")
        let resumed = Count()
        let back = Task {
            await waiting.backoffEnded()
            resumed.value.store(1, ordering: .releasing)
        }
        var yields = 0
        while slots.mayKeep() && yields < 1_000_000 {   // until the waiting command asks for a slot
            yields += 1
            await Task.yield()
        }
        let second = SlotTicket(slots: slots)
        var asked = false
        #expect(second.finish(next: { asked = true; return 9 }) == nil, "a command waits for a slot: it gets this one, the task ends")
        #expect(!asked, "no queued command is taken for a slot that goes to a waiting command")
        yields = 0
        while resumed.value.load(ordering: .acquiring) == 0 && yields < 1_000_000 {
            yields += 1
            await Task.yield()
        }
        #expect(resumed.value.load(ordering: .acquiring) == 1, "the waiting command went on in the handed-over slot")
        #expect(!slots.tryTake())
        back.cancel()
    }

    @Test func theQueueHandsOutCommandsInOrderUntilStopped() {
        let queue = CommandQueue()
        let pieces = (0..<3).map { JSONStreamSplitter.Piece(bytes: Array(#"{"n":\#($0)}"#.utf8), offset: 0, line: $0 + 1) }
        queue.append(pieces.enumerated().map { CommandQueue.Item(piece: $1, index: $0, skip: false) })
        #expect(queue.progress == (0, false))
        #expect(queue.take()?.index == 0)
        #expect(queue.take()?.index == 1)
        #expect(queue.progress == (2, false))
        queue.stop()
        #expect(queue.take() == nil, "nothing is taken after a stop")
        #expect(queue.progress == (2, false), "what was taken is what is in flight")
        let drained = CommandQueue()
        drained.append([CommandQueue.Item(piece: pieces[0], index: 0, skip: true)])
        #expect(drained.take()?.skip == true)
        #expect(drained.take() == nil && drained.progress == (1, true))
    }

    @Test func onlyCommandsWhoseRequestsGoOneAtATimeLend() {
        let slots = Slots(1) {}
        #expect(slots.tryTake())
        let fanOut = SlotTicket(slots: slots)
        fanOut.allowLending(for: command(calls: 2))
        fanOut.backoffStarted()
        #expect(!slots.tryTake(), "a fan-out's other calls may still be working: it keeps its slot")
        #expect(fanOut.finish(next: { nil as Int? }) == nil)
        #expect(slots.tryTake())
    }

    @Test func aCancelledWaitGivesUpWithoutASlotAndFinishGivesNothingBack() async {
        let slots = Slots(1) {}
        let waiting = SlotTicket(slots: slots)
        #expect(slots.tryTake())
        waiting.allowLending(for: command(calls: 1))
        waiting.backoffStarted()
        #expect(slots.tryTake(), "another command holds the slot")
        let ended = Count()
        let back = Task {
            await waiting.backoffEnded()
            ended.value.store(1, ordering: .releasing)
        }
        back.cancel()
        var yields = 0
        while ended.value.load(ordering: .acquiring) == 0 && yields < 1_000_000 {
            yields += 1
            await Task.yield()
        }
        #expect(ended.value.load(ordering: .acquiring) == 1, "a cancelled wait returns at once")
        #expect(waiting.finish(next: { 1 }) == nil, "holding no slot, it cannot go on to another command")
        #expect(!slots.tryTake(), "the cancelled command held no slot, so it gave none back")
        slots.give()
        #expect(slots.tryTake())
    }
}

/// Through the binary: with `--concurrency 1`, a command in a long backoff does not stop the
/// next one from running (seed 7: the first call fails with a retryable 429, Retry-After 400 ms).
@Suite struct CLISlotLendingTests {
    @Test func aCommandInBackoffLetsTheNextOneRunInItsSlot() async throws {
        let input = #"{"id":"A","model":"m","prompt":"first"}"# + "\n" + #"{"id":"B","model":"m","prompt":"second"}"#
        let run = try await CLI.run(
            ["--quiet", "--unordered", "--concurrency", "1", "--mock-faults", "retryable=0.5,retry_after_ms=400,seed=7"], stdin: input)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.records.map { $0["id"] as? String } == ["B", "A"], "B ran and finished while A waited")
        #expect(run.records.last?[path: "telemetry.retries"] as? Int == 1)
        // Ordered output still writes A first.
        let ordered = try await CLI.run(["--quiet", "--concurrency", "1", "--mock-faults", "retryable=0.5,retry_after_ms=400,seed=7"], stdin: input)
        #expect(ordered.records.map { $0["id"] as? String } == ["A", "B"])
    }
}
