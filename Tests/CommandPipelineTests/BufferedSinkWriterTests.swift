import CommandPipeline
import Foundation
import Synchronization
import Testing

/// A batch writer scripted by the test: each call answers with the next step (the last one
/// repeated), and every batch it was handed (their command ids) is recorded.
private final class ScriptedBatchWriter: SinkBatchWriter, @unchecked Sendable {
    let log: Log
    private var script: [BufferedSinkWriter.Step]
    init(_ script: [BufferedSinkWriter.Step], log: Log) {
        self.script = script
        self.log = log
    }
    func write(_ batch: ArraySlice<SinkRow>) -> BufferedSinkWriter.Step {
        log.state.withLock { $0.batches.append(batch.map(\.commandIDText)) }
        return script.count > 1 ? script.removeFirst() : script[0]
    }
    func close(drained: Bool) {
        log.state.withLock { $0.closes.append(drained) }
        log.closed.signal()
    }

    final class Log: Sendable {
        let state = Mutex<(batches: [[String]], closes: [Bool])>(([], []))
        var batches: [[String]] { state.withLock { $0.batches } }
        var closes: [Bool] { state.withLock { $0.closes } }
        /// Signalled by each close.
        let closed = DispatchSemaphore(value: 0)
        /// Whether a close came within `seconds` (waited for on a dispatch thread, not the test's pool).
        func waitForClose(seconds: Double) async -> Bool {
            await withCheckedContinuation { (done: CheckedContinuation<Bool, Never>) in
                DispatchQueue.global().async { done.resume(returning: self.closed.wait(timeout: .now() + seconds) == .success) }
            }
        }
    }
}

private func delivery(_ id: String, record: ArraySlice<UInt8>, index: Int = 0) -> ResultDelivery {
    ResultDelivery(runID: "run", commandID: id, index: index, status: .succeeded, record: record)
}

/// A row made from ten bytes of a 1 MiB buffer (the delivery and its view gone when this returns).
private func rowFromALargeBuffer(_ big: [UInt8]) -> SinkRow {
    SinkRow(ResultDelivery(runID: "r", commandID: "c", index: 3, status: .failed, record: big[10..<20]))
}

private func finish(_ writer: BufferedSinkWriter) async {
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in writer.finish(done) }
}

/// The buffer and writer thread the SQLite and PostgreSQL sinks share (issue 28).
@Suite struct BufferedSinkWriterTests {
    /// A held row is a copy of its bytes, not a view: it keeps nothing of the buffer the record
    /// came from (a view kept the CLI's whole result line alive, more than the bound counted).
    @Test func aRowIsACopyThatKeepsNothingOfTheBufferItCameFrom() {
        var big = [UInt8](repeating: 0x61, count: 1 << 20)
        for i in 10..<20 { big[i] = UInt8(0x30 + i - 10) }
        let row = rowFromALargeBuffer(big)
        let before = big.withUnsafeBufferPointer { $0.baseAddress }
        big[0] = 0x62   // copy-on-write would move the storage if the row still shared it
        #expect(big.withUnsafeBufferPointer { $0.baseAddress } == before, "the row holds no reference to the 1 MiB buffer")
        #expect(String(decoding: row.record, as: UTF8.self) == "0123456789")
        #expect(row.runIDText == "r" && row.commandIDText == "c" && row.index == 3 && row.status == .failed)
        #expect(row.retainedBytes == 12 + SinkRow.overhead, "what the row keeps: its 12 copied bytes and its fixed overhead")
    }

    /// The bound counts what the held rows keep allocated (their copies), so a record that is a
    /// small view of a large buffer counts as small and keeps little; beyond the bound rows are
    /// dropped, the first drop said once.
    @Test func theBoundCountsTheBytesTheRowsKeepAndDropsBeyondIt() {
        let big = [UInt8](repeating: 0x7b, count: 1 << 20)
        let perRow = 100 + "run".utf8.count + 2 + SinkRow.overhead   // ids "c0"…"c9"
        let writer = BufferedSinkWriter(maxBatch: 10, maxBufferedBytes: perRow * 5 + perRow / 2)   // no thread: nothing is written
        var outcomes: [BufferedSinkWriter.Appended] = []
        for i in 0..<8 { outcomes.append(writer.append(delivery("c\(i)", record: big[1000..<1100]))) }
        #expect(outcomes == Array(repeating: .accepted, count: 5) + [.dropped(first: true), .dropped(first: false), .dropped(first: false)])
        #expect(writer.bufferedBytes == perRow * 5)
        #expect(writer.counts == BufferedSinkWriter.Counts(written: 0, dropped: 3, failed: 0, held: 5))
        writer.abandon()
        #expect(writer.append(delivery("late", record: big[0..<1])) == .closed)
    }

    /// The writer thread hands held rows in order, at most `maxBatch` at a time; rows stay held
    /// (and counted) through a retry and are freed from the bound only when settled; a partial
    /// settlement keeps the rest for the next call; `finish` returns once all are settled and the
    /// batch writer closed as drained.
    @Test func rowsAreHeldUntilSettledThenFinishDrains() async {
        let log = ScriptedBatchWriter.Log()
        let writer = BufferedSinkWriter(maxBatch: 3, maxBufferedBytes: 1 << 20)
        let record = Array("{}".utf8)[...]
        for i in 0..<5 { #expect(writer.append(delivery("c\(i)", record: record, index: i)) == .accepted) }
        // Retry once, then settle 2 written + 1 failed, then 1 written (of two handed), then all.
        writer.start(
            name: "test-sink",
            ScriptedBatchWriter([.retry(afterSeconds: 0), .settled(written: 2, failed: 1), .settled(written: 1, failed: 0), .settled(written: 9, failed: 0)], log: log))
        await finish(writer)
        #expect(log.batches == [["c0", "c1", "c2"], ["c0", "c1", "c2"], ["c3", "c4"], ["c4"]])
        #expect(writer.counts == BufferedSinkWriter.Counts(written: 4, dropped: 0, failed: 1, held: 0), "a settlement beyond the batch counts only the batch")
        #expect(writer.bufferedBytes == 0)
        #expect(log.closes == [true])
        #expect(writer.append(delivery("late", record: record)) == .closed)
    }

    /// Abandoned (the run's end gave up on it), the writer stops after the call in progress: what
    /// it held is counted, never written, and the batch writer is closed without draining.
    @Test func anAbandonedWriterStopsAndSaysWhatItHeld() async throws {
        let log = ScriptedBatchWriter.Log()
        let writer = BufferedSinkWriter(maxBatch: 100, maxBufferedBytes: 1 << 20)
        for i in 0..<4 { _ = writer.append(delivery("c\(i)", record: Array("{}".utf8)[...])) }
        writer.start(name: "test-sink", ScriptedBatchWriter([.retry(afterSeconds: 0.05)], log: log))
        #expect(writer.abandon() == 4)
        await finish(writer)   // returns at once: abandoned
        #expect(await log.waitForClose(seconds: 60), "the thread notices within one pause")
        #expect(log.closes == [false])
        #expect(writer.counts.held == 4 && writer.counts.written == 0)
    }
}
