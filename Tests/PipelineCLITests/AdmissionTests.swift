import CommandPipeline
import Foundation
import Synchronization
import Testing

@testable import pipeline

/// Admission (issue 12 item 5, issue 23 item 6): queued commands start in input order while a
/// `--concurrency` slot is free; a task whose command ended goes on to the next in its slot; a
/// command waiting out a retry's backoff lends its slot and takes one back, before new commands,
/// when the wait is over.
@Suite struct AdmissionTests {
    final class Count: Sendable {
        let value = Atomic<Int>(0)
    }

    func command(calls: Int) -> PlannedCommand {
        PlannedCommand(id: "c", plan: ExecutionPlan(calls: (0..<calls).map { _ in APICall(model: "m", parts: [.text("x")]) }))
    }

    static let pieces = (0..<4).map { JSONStreamSplitter.Piece(bytes: Array(#"{"n":\#($0)}"#.utf8), offset: 0, line: $0 + 1) }

    func items(_ count: Int) -> [Admission.Item] {
        (0..<count).map { Admission.Item(piece: Self.pieces[$0], index: $0, skip: false) }
    }

    /// Yields until `condition` holds, boundedly; whether it holds.
    func eventually(_ condition: () -> Bool) async -> Bool {
        var yields = 0
        while !condition() && yields < 1_000_000 {
            yields += 1
            await Task.yield()
        }
        return condition()
    }

    @Test func aWaitingCommandLendsItsSlotAndGetsOneBackFirst() async {
        let freed = Count()
        let admission = Admission(slots: 1) { freed.value.add(1, ordering: .relaxed) }
        admission.append(items(3))
        #expect(admission.start()?.index == 0, "the first command takes the one slot")
        let waiting = SlotTicket(admission: admission)
        waiting.allowLending(for: command(calls: 1))
        #expect(admission.start() == nil, "no second slot")
        waiting.backoffStarted()
        #expect(freed.value.load(ordering: .relaxed) == 1, "lending tells the run loop a slot is free")
        #expect(admission.start()?.index == 1, "a new command runs in the lent slot")
        // The wait ends while the new command works: it waits for a slot, ahead of new commands.
        let resumed = Count()
        let back = Task {
            await waiting.backoffEnded()
            resumed.value.store(1, ordering: .releasing)
        }
        #expect(await eventually { admission.hasReclaimer })
        #expect(resumed.value.load(ordering: .acquiring) == 0, "no slot yet: the new command holds it")
        #expect(admission.start() == nil)
        // The new command ends: its slot goes to the waiting one, not to queued command 2.
        #expect(SlotTicket(admission: admission).finish() == nil)
        #expect(await eventually { resumed.value.load(ordering: .acquiring) == 1 }, "the waiting command went on")
        #expect(admission.start() == nil, "the slot went to the command that waited, not to a new one")
        #expect(freed.value.load(ordering: .relaxed) == 1, "a slot handed to a waiting command is not announced as free")
        back.cancel()
        #expect(waiting.finish(goOn: false) == nil, "cancelled: the task ends")
        #expect(freed.value.load(ordering: .relaxed) == 2, "the run loop is told")
        #expect(admission.start()?.index == 2, "and the slot comes back when that command ends")
    }

    /// A task whose command ended goes on to the next queued command in the same slot, unless a
    /// waiting command wants a slot back: then the slot goes to it and the task ends.
    @Test func anEndedCommandKeepsItsSlotForTheNextOneOnlyWhenNobodyWaits() async {
        let freed = Count()
        let admission = Admission(slots: 1) { freed.value.add(1, ordering: .relaxed) }
        admission.append(items(4))
        #expect(admission.start()?.index == 0)
        let first = SlotTicket(admission: admission)
        #expect(first.finish()?.index == 1, "nobody waits: the slot is kept for the next command")
        #expect(admission.start() == nil, "kept, not given back")
        #expect(first.finish() == nil, "a ticket holds its slot once")
        #expect(admission.progress == (2, false))
        // Command 1, in backoff, lends its slot, and then wants one back.
        let waiting = SlotTicket(admission: admission)
        waiting.allowLending(for: command(calls: 1))
        waiting.backoffStarted()
        #expect(admission.start()?.index == 2, "a new command runs in the lent slot")
        let resumed = Count()
        let back = Task {
            await waiting.backoffEnded()
            resumed.value.store(1, ordering: .releasing)
        }
        #expect(await eventually { admission.hasReclaimer }, "the waiting command asks for a slot")
        #expect(SlotTicket(admission: admission).finish() == nil, "a command waits for a slot: it gets this one, the task ends")
        #expect(admission.progress == (3, false), "no queued command is taken for a slot that goes to a waiting command")
        #expect(await eventually { resumed.value.load(ordering: .acquiring) == 1 }, "the waiting command went on in the handed-over slot")
        #expect(admission.start() == nil)
        #expect(freed.value.load(ordering: .relaxed) == 1, "only the lending was announced")
        back.cancel()
    }

    @Test func commandsStartInOrderWhileSlotsAllowUntilStopped() {
        let freed = Count()
        let admission = Admission(slots: 2) { freed.value.add(1, ordering: .relaxed) }
        #expect(admission.start() == nil, "nothing queued")
        admission.append(items(3))
        #expect(admission.progress == (0, false))
        #expect(admission.start()?.index == 0)
        #expect(admission.start()?.index == 1)
        #expect(admission.start() == nil, "two slots, both taken: command 2 waits in the queue")
        #expect(admission.progress == (2, false))
        admission.stop()
        #expect(SlotTicket(admission: admission).finish() == nil, "nothing is taken after a stop: the slot goes back")
        #expect(freed.value.load(ordering: .relaxed) == 1)
        #expect(admission.start() == nil, "nor started")
        #expect(admission.progress == (2, false), "what was taken is what is in flight")
        let drained = Admission(slots: 1) {}
        drained.append([Admission.Item(piece: Self.pieces[0], index: 0, skip: true)])
        #expect(drained.start()?.skip == true)
        #expect(SlotTicket(admission: drained).finish() == nil && drained.progress == (1, true))
    }

    @Test func onlyCommandsWhoseRequestsGoOneAtATimeLend() {
        let admission = Admission(slots: 1) {}
        admission.append(items(2))
        #expect(admission.start()?.index == 0)
        let fanOut = SlotTicket(admission: admission)
        fanOut.allowLending(for: command(calls: 2))
        fanOut.backoffStarted()
        #expect(admission.start() == nil, "a fan-out's other calls may still be working: it keeps its slot")
        #expect(fanOut.finish(goOn: false) == nil)
        #expect(admission.start()?.index == 1)
    }

    @Test func aCancelledWaitGivesUpWithoutASlotAndFinishGivesNothingBack() async {
        let admission = Admission(slots: 1) {}
        admission.append(items(3))
        let waiting = SlotTicket(admission: admission)
        #expect(admission.start()?.index == 0)
        waiting.allowLending(for: command(calls: 1))
        waiting.backoffStarted()
        #expect(admission.start()?.index == 1, "another command holds the slot")
        let ended = Count()
        let back = Task {
            await waiting.backoffEnded()
            ended.value.store(1, ordering: .releasing)
        }
        back.cancel()
        #expect(await eventually { ended.value.load(ordering: .acquiring) == 1 }, "a cancelled wait returns at once")
        #expect(!admission.hasReclaimer)
        #expect(waiting.finish() == nil, "holding no slot, it cannot go on to another command")
        #expect(admission.start() == nil, "the cancelled command held no slot, so it gave none back")
        #expect(SlotTicket(admission: admission).finish(goOn: false) == nil, "command 1 ends")
        #expect(admission.start()?.index == 2)
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
