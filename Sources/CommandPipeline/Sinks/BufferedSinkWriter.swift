import Dispatch
import Foundation
import Synchronization

/// One result as a database sink holds it while its writer is behind: the run id's, the command
/// id's and the record's bytes **copied** into one allocation of exactly their size, with the
/// index and status.
///
/// A copy, not a view of the delivery's record: a view keeps alive the whole buffer it points
/// into (the CLI's result line, whose capacity is larger than the record), so a buffer that
/// counted views held far more than its bound said (issue 28: 806 MB at a 256 MiB bound).
/// `retainedBytes` is what the row really keeps allocated, and what the bound counts.
package final class SinkRow: @unchecked Sendable {
    // @unchecked: `storage` is written once, in `init`, and only read after; freed in `deinit`.
    package let index: Int
    package let status: ResultDelivery.Status
    private let storage: UnsafeMutableRawBufferPointer
    private let runIDCount: Int
    private let commandIDCount: Int
    private let recordCount: Int

    /// Bytes a row keeps besides its copied bytes: the object (header, fields), the two
    /// allocations' headers and rounding, and its slot in the buffer's array.
    package static let overhead = 128

    package init(_ delivery: ResultDelivery) {
        index = delivery.index
        status = delivery.status
        var runID = delivery.runID
        var commandID = delivery.commandID
        let r = runID.utf8.count
        let c = commandID.utf8.count
        let total = r.addingSaturating(c).addingSaturating(delivery.record.count)
        storage = .allocate(byteCount: max(1, total), alignment: 1)
        runIDCount = r
        commandIDCount = c
        recordCount = delivery.record.count
        let base = storage.baseAddress!
        runID.withUTF8 { if let p = $0.baseAddress { base.copyMemory(from: p, byteCount: r) } }
        commandID.withUTF8 { if let p = $0.baseAddress { (base + r).copyMemory(from: p, byteCount: c) } }
        delivery.record.withUnsafeBytes { if let p = $0.baseAddress { (base + r + c).copyMemory(from: p, byteCount: $0.count) } }
    }

    deinit { storage.deallocate() }

    /// The run id's UTF-8 bytes (valid while the row is).
    package var runID: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<runIDCount]) }
    /// The command id's UTF-8 bytes (valid while the row is).
    package var commandID: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[runIDCount..<(runIDCount + commandIDCount)]) }
    /// The run id's and the command id's bytes together (the row's key with `runIDCount`).
    package var key: SinkRowKey { SinkRowKey(bytes: UnsafeRawBufferPointer(rebasing: storage[0..<(runIDCount + commandIDCount)]), split: runIDCount) }
    /// The record's bytes, the result line's JSON without its newline (valid while the row is).
    package var record: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: storage[(runIDCount + commandIDCount)..<(runIDCount + commandIDCount + recordCount)])
    }

    package var runIDText: String { String(decoding: runID, as: UTF8.self) }
    package var commandIDText: String { String(decoding: commandID, as: UTF8.self) }
    package var recordText: String { String(decoding: record, as: UTF8.self) }

    /// Bytes the row keeps allocated: what the buffer's bound counts.
    package var retainedBytes: Int { storage.count.addingSaturating(Self.overhead) }
}

/// A row's `(run id, command id)` as bytes, hashable without making strings (valid while its row is).
package struct SinkRowKey: Hashable {
    let bytes: UnsafeRawBufferPointer
    let split: Int
    package static func == (a: SinkRowKey, b: SinkRowKey) -> Bool { a.split == b.split && a.bytes.elementsEqual(b.bytes) }
    package func hash(into hasher: inout Hasher) {
        hasher.combine(split)
        hasher.combine(bytes: bytes)
    }
}

/// What a database sink's writer thread does with the rows it is handed (`BufferedSinkWriter`).
/// Used by that thread alone.
package protocol SinkBatchWriter: AnyObject {
    /// Writes the first rows of `batch` (all of them, or fewer: a smaller batch after a timeout).
    /// `.settled` says how many of the first rows are done with (written, or failed for good);
    /// `.retry` keeps every row held and pauses before the writer tries again.
    func write(_ batch: ArraySlice<SinkRow>) -> BufferedSinkWriter.Step
    /// Called once, last, on the writer thread: `drained` when the sink finished and every row
    /// was settled (make it durable), false when it was abandoned (only close).
    func close(drained: Bool)
}

/// The buffer and writer thread both database sinks share (SQLite, PostgreSQL): `append` copies a
/// delivery into a `SinkRow` and adds it to a buffer bounded in bytes (what the rows keep
/// allocated, `SinkRow.retainedBytes`); a thread of its own hands the `SinkBatchWriter` up to
/// `maxBatch` held rows at a time, and the rows stay held (counted against the bound) until the
/// writer settles them. While one batch is written the next gathers, so batches grow with the
/// rate (no timer). A row beyond the bound is dropped and counted.
///
/// `finish` waits until every row is settled, then the batch writer closes (`drained`);
/// `abandon` stops the thread after the batch in progress, and what it still holds is never
/// written. The thread holds this object, not the sink: dropping the sink abandons the writer.
package final class BufferedSinkWriter: Sendable {
    /// What the batch writer did with a batch.
    package enum Step: Sendable, Equatable {
        /// The first `written + failed` rows of the batch are done with.
        case settled(written: Int, failed: Int)
        /// Nothing settled; try again after `seconds` (0: at once).
        case retry(afterSeconds: Double)
    }

    /// What `append` did with a row.
    package enum Appended: Sendable, Equatable {
        case accepted
        /// Beyond the bound; `first` for the run's first drop.
        case dropped(first: Bool)
        /// The sink has finished or was abandoned.
        case closed
    }

    package struct Counts: Sendable, Hashable {
        package var written = 0
        package var dropped = 0
        package var failed = 0
        package var held = 0
        package init(written: Int = 0, dropped: Int = 0, failed: Int = 0, held: Int = 0) {
            self.written = written
            self.dropped = dropped
            self.failed = failed
            self.held = held
        }
    }

    package let maxBatch: Int
    package let maxBufferedBytes: Int
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)

    private struct State {
        var rows: [SinkRow] = []
        /// Rows before `head` are settled (compacted now and then).
        var head = 0
        /// Bytes the held rows keep (`SinkRow.retainedBytes`), the batch being written included.
        var bytes = 0
        var counts = Counts()
        var writerWaiting = false
        var finishing = false
        var abandoned = false
        var writerDone = false
        var finished: CheckedContinuation<Void, Never>?
        var droppedReported = false
    }

    package init(maxBatch: Int, maxBufferedBytes: Int) {
        self.maxBatch = max(1, maxBatch)
        self.maxBufferedBytes = max(1, maxBufferedBytes)
    }

    /// Starts the writer thread, named `name`, with `batchWriter`: from here on only that thread uses it.
    package func start(name: String, _ batchWriter: sending any SinkBatchWriter) {
        let box = UncheckedBox(batchWriter)
        let thread = Thread { [self] in run(box.value) }
        thread.name = name
        thread.start()
    }

    /// `256 MiB`, `64 KiB`: a bound as messages say it.
    package static func amount(_ bytes: Int) -> String { bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB" }

    package var counts: Counts {
        state.withLock { s in
            var c = s.counts
            c.held = s.rows.count - s.head
            return c
        }
    }

    /// Bytes held now (for tests).
    package var bufferedBytes: Int { state.withLock { $0.bytes } }

    /// Copies `delivery` into a row and holds it, or drops it beyond the bound; never waits for the writer.
    package func append(_ delivery: ResultDelivery) -> Appended {
        let row = SinkRow(delivery)
        let size = row.retainedBytes
        let (outcome, signal) = state.withLock { s -> (Appended, Bool) in
            guard !s.finishing, !s.abandoned else { return (.closed, false) }
            guard s.bytes.addingSaturating(size) <= maxBufferedBytes else {
                s.counts.dropped += 1
                defer { s.droppedReported = true }
                return (.dropped(first: !s.droppedReported), false)
            }
            s.rows.append(row)
            s.bytes = s.bytes.addingSaturating(size)
            defer { s.writerWaiting = false }
            return (.accepted, s.writerWaiting)
        }
        if signal { wake.signal() }
        return outcome
    }

    /// Takes no more rows; resumes `done` once every held row is settled and the batch writer
    /// closed (or at once if the writer is done or abandoned).
    package func finish(_ done: CheckedContinuation<Void, Never>) {
        let resumeNow = state.withLock { s -> Bool in
            s.finishing = true
            if s.writerDone || s.abandoned { return true }
            s.finished = done
            return false
        }
        if resumeNow { done.resume() } else { wake.signal() }
    }

    /// Stops the writer after the batch in progress; returns how many rows it still held (never written).
    @discardableResult
    package func abandon() -> Int {
        let (waiter, held) = state.withLock { s -> (CheckedContinuation<Void, Never>?, Int) in
            s.abandoned = true
            defer { s.finished = nil }
            return (s.finished, s.rows.count - s.head)
        }
        wake.signal()
        waiter?.resume()
        return held
    }

    package var isAbandoned: Bool { state.withLock { $0.abandoned } }

    /// Sleeps on the writer thread in 50 ms slices; false as soon as the sink is abandoned.
    package func pause(seconds: Double) -> Bool {
        var left = seconds
        while left > 0 {
            if isAbandoned { return false }
            let slice = min(left, 0.05)
            Thread.sleep(forTimeInterval: slice)
            left -= slice
        }
        return !isAbandoned
    }

    // MARK: The writer thread

    private func run(_ batchWriter: any SinkBatchWriter) {
        while true {
            // A copy of the batch's references, so appending meanwhile never copies the buffer.
            let next = state.withLock { s -> (batch: [SinkRow], stop: Bool) in
                if s.abandoned { return ([], true) }
                let held = s.rows.count - s.head
                if held == 0 {
                    if s.finishing { return ([], true) }
                    s.writerWaiting = true
                    return ([], false)
                }
                return (Array(s.rows[s.head..<(s.head + min(held, maxBatch))]), false)
            }
            if next.stop { break }
            if next.batch.isEmpty {
                wake.wait()
                continue
            }
            switch batchWriter.write(next.batch[...]) {
            case .settled(let written, let failed):
                settle(written: max(0, min(written, next.batch.count)), failed: max(0, min(failed, next.batch.count - max(0, written))))
            case .retry(let seconds):
                if seconds > 0 { _ = pause(seconds: seconds) }
            }
        }
        let drained = state.withLock { $0.finishing && !$0.abandoned && $0.rows.count == $0.head }
        batchWriter.close(drained: drained)
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.writerDone = true
            defer { s.finished = nil }
            return s.finished
        }
        waiter?.resume()
    }

    /// The first `written + failed` held rows are done with: their bytes are freed from the bound.
    private func settle(written: Int, failed: Int) {
        state.withLock { s in
            let n = min(written + failed, s.rows.count - s.head)
            for i in s.head..<(s.head + n) { s.bytes = max(0, s.bytes - s.rows[i].retainedBytes) }
            s.head += n
            if s.head == s.rows.count {
                s.rows.removeAll(keepingCapacity: true)
                s.head = 0
            } else if s.head > 4_096 && s.head * 2 > s.rows.count {
                s.rows.removeFirst(s.head)
                s.head = 0
            }
            s.counts.written += written
            s.counts.failed += failed
        }
    }
}

/// Hands a value to the writer thread, which alone uses it from then on.
private final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
