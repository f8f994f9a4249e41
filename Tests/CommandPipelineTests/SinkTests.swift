import CommandPipeline
import CommandPipelineTesting
import Foundation
import PipelineTestSupport
import Synchronization
import Testing

/// A sink that records what it receives (and in which order sinks ran, through `order`).
private struct RecordingSink: ResultSink {
    let name: String
    let priority: Int
    let order: Shared<[String]>
    let received = Shared<[ResultDelivery]>([])
    var accepts: @Sendable (ResultDelivery) -> Bool = { _ in true }
    var fails = false

    init(_ name: String, priority: Int = 100, order: Shared<[String]>, fails: Bool = false, accepts: @escaping @Sendable (ResultDelivery) -> Bool = { _ in true }) {
        self.name = name
        self.priority = priority
        self.order = order
        self.fails = fails
        self.accepts = accepts
    }

    struct Refused: Error, CustomStringConvertible {
        var description: String { "refused on purpose" }
    }

    func enabled(for delivery: ResultDelivery) -> Bool { accepts(delivery) }

    func deliver(_ delivery: ResultDelivery) async throws {
        order.withLock { $0.append("\(name):\(delivery.commandID)") }
        received.withLock { $0.append(delivery) }
        if fails { throw Refused() }
    }
}

/// A sink whose `deliver` never returns and ignores cancellation (a hung connection).
private final class HangingSink: ResultSink {
    let name = "hanging"
    let priority: Int
    let started = Shared(0)
    private let gate = Mutex<[CheckedContinuation<Void, Never>]>([])

    init(priority: Int) { self.priority = priority }

    func deliver(_ delivery: ResultDelivery) async throws {
        started.withLock { $0 += 1 }
        await withCheckedContinuation { continuation in gate.withLock { $0.append(continuation) } }
    }

    /// Lets the hung calls return (at the end of the test, so no task is left behind).
    func release() {
        for continuation in gate.withLock({ list -> [CheckedContinuation<Void, Never>] in
            defer { list.removeAll() }
            return list
        }) { continuation.resume() }
    }
}

/// A sink whose calls take 3 s on the manual clock, and one that never returns for `hangOn`.
private final class SlowSink: ResultSink {
    let name = "slow"
    let clock: ManualClock
    let hangOn: String
    let started = Shared(0)
    let finished = Shared<[String]>([])
    private let gate = Mutex<CheckedContinuation<Void, Never>?>(nil)

    init(clock: ManualClock, hangOn: String) {
        self.clock = clock
        self.hangOn = hangOn
    }

    func deliver(_ delivery: ResultDelivery) async throws {
        started.withLock { $0 += 1 }
        if delivery.commandID == hangOn {
            await withCheckedContinuation { continuation in gate.withLock { $0 = continuation } }
            return
        }
        try await clock.sleep(for: .seconds(3))
        finished.withLock { $0.append(delivery.commandID) }
    }

    func release() { gate.withLock { $0 }?.resume() }
}

private func delivery(_ id: String, index: Int, status: ResultDelivery.Status = .succeeded) -> ResultDelivery {
    let record = #"{"id":"\#(id)","index":\#(index),"status":"\#(status.rawValue)"}"#
    return ResultDelivery(runID: "run-1", commandID: id, index: index, status: status, record: Array(record.utf8))
}

@Suite struct SinkDispatcherTests {
    @Test func runsSinksInPriorityOrderForEachDelivery() async {
        let order = Shared<[String]>([])
        let late = RecordingSink("late", priority: 100, order: order)
        let early = RecordingSink("early", priority: 10, order: order)
        let middle = RecordingSink("middle", priority: 50, order: order)
        let alsoMiddle = RecordingSink("alsoMiddle", priority: 50, order: order)
        let dispatcher = SinkDispatcher(sinks: [late, middle, early, alsoMiddle], clock: ManualClock())
        dispatcher.submit(delivery("a", index: 0))
        dispatcher.submit(delivery("b", index: 1))
        let failures = await dispatcher.finish(within: .seconds(60))
        #expect(failures.isEmpty)
        // Deliveries go in batches: for each delivery the sinks run in priority order, and each
        // sink gets the deliveries in order (how two deliveries' turns interleave depends on
        // whether they shared a batch).
        let seen = order.withLock { $0 }
        for id in ["a", "b"] {
            #expect(seen.filter { $0.hasSuffix(":" + id) } == ["early", "middle", "alsoMiddle", "late"].map { "\($0):\(id)" })
        }
        for sink in ["early", "middle", "alsoMiddle", "late"] {
            #expect(seen.filter { $0.hasPrefix(sink + ":") } == ["a", "b"].map { "\(sink):\($0)" })
        }
    }

    /// Issue 28: one timed task per sink and batch, yet each call keeps its own timeout: three
    /// calls of 3 s in one batch (9 s in all) under a 5 s timeout all succeed, and a call that
    /// hangs after them is cut 5 s after the one before it returned.
    @Test func aBatchKeepsEachCallsOwnTimeout() async {
        let clock = ManualClock()
        let slow = SlowSink(clock: clock, hangOn: "hang")
        let failures = Shared<[SinkFailure]>([])
        let dispatcher = SinkDispatcher(sinks: [slow], timeout: .seconds(5), clock: clock) { f in failures.withLock { $0.append(f) } }
        dispatcher.submit(delivery("first", index: 0))
        #expect(await eventually { slow.started.withLock { $0 } == 1 })
        // Queued while the first call runs: the next batch.
        for i in 1...3 { dispatcher.submit(delivery("d\(i)", index: i)) }
        dispatcher.submit(delivery("hang", index: 4))
        dispatcher.submit(delivery("after", index: 5))
        await drive(clock, until: { failures.withLock { !$0.isEmpty } }, step: .seconds(1))
        #expect(slow.finished.withLock { $0 } == ["first", "d1", "d2", "d3"], "no call of 3 s timed out")
        #expect(failures.withLock { $0 } == [
            SinkFailure(sink: "slow", commandID: "hang", reason: .timedOut(.seconds(5))),
            SinkFailure(sink: "slow", commandID: "after", reason: .busy),
        ])
        #expect(clock.now == .seconds(17), "3 + 9 s of calls, then the hung call's own 5 s")
        slow.release()
        _ = await dispatcher.finish(within: .seconds(1))
    }

    @Test func aThrowingSinkIsReportedByNameAndChangesNothingElse() async {
        let order = Shared<[String]>([])
        let thrower = RecordingSink("thrower", priority: 1, order: order, fails: true)
        let after = RecordingSink("after", priority: 2, order: order)
        let dispatcher = SinkDispatcher(sinks: [after, thrower], clock: ManualClock())
        let sent = [delivery("a", index: 0), delivery("b", index: 1, status: .failed)]
        for d in sent { dispatcher.submit(d) }
        let failures = await dispatcher.finish(within: .seconds(60))
        #expect(failures == [
            SinkFailure(sink: "thrower", commandID: "a", reason: .threw("refused on purpose")),
            SinkFailure(sink: "thrower", commandID: "b", reason: .threw("refused on purpose")),
        ])
        #expect(failures.first?.description == "sink thrower failed delivering 'a': refused on purpose")
        // Both sinks got exactly what was sent, bytes and all.
        #expect(after.received.withLock { $0 } == sent)
        #expect(thrower.received.withLock { $0 } == sent)
    }

    @Test func aSinkThatOptsOutIsSkippedForThatResultOnly() async {
        let order = Shared<[String]>([])
        let failuresOnly = RecordingSink("failures-only", order: order, accepts: { $0.status == .failed })
        let all = RecordingSink("all", order: order)
        let dispatcher = SinkDispatcher(sinks: [failuresOnly, all], clock: ManualClock())
        dispatcher.submit(delivery("ok", index: 0))
        dispatcher.submit(delivery("bad", index: 1, status: .failed))
        #expect(await dispatcher.finish(within: .seconds(60)).isEmpty)
        #expect(failuresOnly.received.withLock { $0.map(\.commandID) } == ["bad"])
        #expect(all.received.withLock { $0.map(\.commandID) } == ["ok", "bad"])
    }

    /// The hung sink costs the next sink one timeout (on the manual clock), then is skipped
    /// while its call is still out: later deliveries reach the other sink with no clock move at all.
    @Test func aHangingSinkIsAbandonedAfterItsTimeoutAndThenSkipped() async {
        let clock = ManualClock()
        let order = Shared<[String]>([])
        let hanging = HangingSink(priority: 1)
        let after = RecordingSink("after", priority: 2, order: order)
        let failures = Shared<[SinkFailure]>([])
        let dispatcher = SinkDispatcher(sinks: [hanging, after], timeout: .seconds(5), clock: clock) { f in failures.withLock { $0.append(f) } }
        dispatcher.submit(delivery("a", index: 0))
        dispatcher.submit(delivery("b", index: 1))
        dispatcher.submit(delivery("c", index: 2))
        // The first delivery is stuck in the hanging sink until its timeout passes.
        #expect(await eventually { hanging.started.withLock { $0 } == 1 && clock.sleeperCount == 1 })
        #expect(after.received.withLock { $0.isEmpty }, "the next sink waits for the timeout, not longer")
        clock.advance(by: .seconds(5))
        #expect(await eventually { after.received.withLock { $0.count } == 3 })
        #expect(hanging.started.withLock { $0 } == 1, "a sink still busy with a timed-out call gets nothing more")
        let all = await dispatcher.finish(within: .seconds(60))
        #expect(all == [
            SinkFailure(sink: "hanging", commandID: "a", reason: .timedOut(.seconds(5))),
            SinkFailure(sink: "hanging", commandID: "b", reason: .busy),
            SinkFailure(sink: "hanging", commandID: "c", reason: .busy),
            SinkFailure(sink: "hanging", commandID: nil, reason: .busy),
        ])
        #expect(failures.withLock { $0 } == all, "onFailure heard each failure as it happened")
        #expect(after.received.withLock { $0.map(\.commandID) } == ["a", "b", "c"])
        hanging.release()
    }

    /// `submit` never waits: with the worker stuck and the queue full, deliveries are dropped
    /// and reported; the drain at the end is bounded by its own limit.
    @Test func aFullQueueDropsAndTheDrainIsBounded() async {
        let clock = ManualClock()
        let order = Shared<[String]>([])
        let hanging = HangingSink(priority: 1)
        let after = RecordingSink("after", priority: 2, order: order)
        let dispatcher = SinkDispatcher(sinks: [hanging, after], timeout: .seconds(3600), capacity: 2, clock: clock)
        dispatcher.submit(delivery("a", index: 0))
        #expect(await eventually { hanging.started.withLock { $0 } == 1 })
        for i in 1...4 { dispatcher.submit(delivery("d\(i)", index: i)) }   // 2 queued, 2 dropped
        let dropped = dispatcher.failures
        #expect(dropped == [
            SinkFailure(sink: "hanging", commandID: "d3", reason: .queueFull), SinkFailure(sink: "after", commandID: "d3", reason: .queueFull),
            SinkFailure(sink: "hanging", commandID: "d4", reason: .queueFull), SinkFailure(sink: "after", commandID: "d4", reason: .queueFull),
        ])
        #expect(clock.sleeperCount == 1)   // the hanging call's timeout (1 h)
        let finishing = Task { await dispatcher.finish(within: .seconds(10)) }
        #expect(await eventually { clock.sleeperCount == 2 })   // … and the drain's limit (10 s)
        clock.advance(by: .seconds(10))
        // The drain gave up: the worker is told to stop delivering; its current call is still bounded by the sink timeout.
        #expect(await eventually { clock.sleeperCount == 2 })
        clock.advance(by: .seconds(3600))
        let all = await finishing.value
        // The worker reports what it could not deliver while the drain reports the sink it
        // skipped: two tasks, so the two kinds interleave in any order; each is complete.
        let rest = Array(all.dropFirst(dropped.count))
        #expect(rest.filter { $0.commandID != nil } == [
            SinkFailure(sink: "hanging", commandID: "a", reason: .timedOut(.seconds(3600))),
            SinkFailure(sink: "after", commandID: "a", reason: .notDelivered),
            SinkFailure(sink: "hanging", commandID: "d1", reason: .notDelivered),
            SinkFailure(sink: "after", commandID: "d1", reason: .notDelivered),
            SinkFailure(sink: "hanging", commandID: "d2", reason: .notDelivered),
            SinkFailure(sink: "after", commandID: "d2", reason: .notDelivered),
        ])
        #expect(rest.filter { $0.commandID == nil } == [SinkFailure(sink: "hanging", commandID: nil, reason: .busy)])
        #expect(rest.count == 7)
        #expect(after.received.withLock { $0.isEmpty })
        hanging.release()
    }

    /// Issue 21 class 8: behind a sink that never answers, the queue is bounded in bytes as well
    /// as in deliveries: large records beyond `maxQueuedBytes` are dropped and reported.
    @Test func theQueueIsBoundedInBytes() async {
        let hanging = HangingSink(priority: 1)
        let dispatcher = SinkDispatcher(sinks: [hanging], timeout: .seconds(3600), capacity: 100_000, maxQueuedBytes: 1 << 20, clock: ManualClock())
        dispatcher.submit(delivery("first", index: 0))
        #expect(await eventually { hanging.started.withLock { $0 } == 1 })
        let big = { (i: Int) in
            ResultDelivery(runID: "run-1", commandID: "big\(i)", index: i, status: .succeeded, record: [UInt8](repeating: 0x20, count: 300_000))
        }
        for i in 1...10 { dispatcher.submit(big(i)) }   // 3 fit in 1 MiB, 7 do not
        #expect(dispatcher.queuedBytes == 900_000)
        #expect(dispatcher.failures.map(\.commandID) == (4...10).map { "big\($0)" })
        #expect(dispatcher.failures.allSatisfy { $0.reason == .queueFull })
        // One record larger than the bound alone still goes when nothing else waits.
        let lone = SinkDispatcher(sinks: [RecordingSink("r", priority: 1, order: Shared([]))], maxQueuedBytes: 10, clock: ManualClock())
        lone.submit(big(0))
        #expect(lone.failures.isEmpty)
        _ = await lone.finish(within: .seconds(1))
        hanging.release()
    }

    @Test func deliveriesCarryTheRecordTheWriterWritesAndAStableKey() async {
        let engine = PipelineEngine(provider: MockProvider.make())
        let command = PlannedCommand(id: "c1", plan: ExecutionPlan(call: APICall(model: "m", parts: [.text("hi")])))
        let outcome = await engine.run(command, index: 4)
        let d = ResultDelivery(runID: "r9", outcome: outcome, index: 4)
        var expected: [UInt8] = []
        ResultWriter.record(outcome, index: 4, to: &expected)
        #expect(Array(d.record) == expected)
        #expect(d.status == .succeeded && d.index == 4 && d.commandID == "c1")
        #expect(d.idempotencyKey == "r9/c1")
        #expect(RunID.problem("r9") == nil)
        #expect(RunID.problem("a b") != nil)
        #expect(RunID.problem(String(repeating: "x", count: 129)) != nil)
        #expect(RunID.make() != RunID.make())
    }
}

@Suite struct JSONLinesFileSinkTests {
    @Test func appendsWholeLinesAndIsDurableAtTheEnd() async throws {
        let dir = try temporaryDirectory(files: ["out.jsonl": "{\"earlier\":true}\n"])
        let path = dir.appendingPathComponent("out.jsonl").path
        let sink = try JSONLinesFileSink(path: path)
        let dispatcher = SinkDispatcher(sinks: [sink], clock: ManualClock())
        dispatcher.submit(delivery("a", index: 0))
        dispatcher.submit(delivery("b", index: 1, status: .failed))
        #expect(await dispatcher.finish(within: .seconds(60)).isEmpty)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == """
            {"earlier":true}
            {"id":"a","index":0,"status":"succeeded"}
            {"id":"b","index":1,"status":"failed"}

            """)
    }

    @Test func aBadPathFailsWhenTheSinkIsMade() throws {
        let dir = try temporaryDirectory()
        #expect(throws: JSONLinesFileSink.WriteError.self) { try JSONLinesFileSink(path: dir.appendingPathComponent("missing/out.jsonl").path) }
        #expect(throws: JSONLinesFileSink.WriteError.self) { try JSONLinesFileSink(path: dir.path) }
    }

    /// A FIFO is refused at once (the open does not wait for a reader), never written into.
    @Test func aFIFOIsRefusedWithoutBlocking() throws {
        let dir = try temporaryDirectory()
        let fifo = dir.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: JSONLinesFileSink.WriteError.self) { try JSONLinesFileSink(path: fifo) }
    }

    /// /dev/full takes no byte: the failure is the sink's, reported with its name.
    @Test func aFailedWriteIsAnError() async throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { return }
        let sink = try JSONLinesFileSink(path: "/dev/full")
        let dispatcher = SinkDispatcher(sinks: [sink], clock: ManualClock())
        dispatcher.submit(delivery("a", index: 0))
        let failures = await dispatcher.finish(within: .seconds(60))
        #expect(failures.first?.sink == "jsonl(/dev/full)")
        #expect(failures.first?.commandID == "a")
        if case .threw(let message)? = failures.first?.reason {
            #expect(message.contains("No space left on device"))
        } else {
            Issue.record("expected a write failure, got \(failures)")
        }
    }
}
