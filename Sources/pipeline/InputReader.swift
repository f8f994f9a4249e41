import CommandPipeline
import Dispatch
import Foundation
import Synchronization

/// Reads stdin on its own thread, splits it into JSON values and hands them to the run
/// loop in batches (one per read), after taking credits from `gate`: one per value plus one
/// per 64 KiB of it (`weight(of:)`). The run loop returns a value's credits when its result
/// is written, so at most `window` values — and at most `window` × 64 KiB of their bytes — are
/// ever read but unwritten: memory stays flat however long the input is and however large its
/// values (each at most `JSONStreamSplitter.maximumValueBytes`).
final class InputReader: Sendable {
    let gate: CreditGate
    private let fd: Int32
    private let stopFlag = Atomic<Bool>(false)
    static let maxBatch = 256

    /// Credits a piece takes: 1, plus 1 per 64 KiB it holds.
    @inline(__always) static func weight(of piece: JSONStreamSplitter.Piece) -> Int { 1 + piece.bytes.count >> 16 }

    /// Counts the bytes read, for the progress line's share of a regular file.
    private let stats: Stats?

    init(fd: Int32, window: Int, stats: Stats? = nil) {
        self.fd = fd
        self.stats = stats
        gate = CreditGate(credits: window)
    }

    func stop() {
        stopFlag.store(true, ordering: .releasing)
        gate.open()
    }

    private var stopped: Bool { stopFlag.load(ordering: .acquiring) }

    /// Starts the thread; `deliver` gets batches of pieces with the 0-based index of the first,
    /// then an empty batch at the end of input.
    func start(deliver: @escaping @Sendable ([JSONStreamSplitter.Piece], Int) -> Void, readFailed: @escaping @Sendable (String) -> Void) {
        let thread = Thread { [self] in
            var splitter = JSONStreamSplitter()
            var index = 0
            var batch: [JSONStreamSplitter.Piece] = []
            var batchWeight = 0
            func send() {
                guard !batch.isEmpty, !stopped else { return }
                gate.acquire(batchWeight)
                if stopped { return }
                deliver(batch, index)
                index += batch.count
                batch.removeAll(keepingCapacity: true)
                batchWeight = 0
            }
            let size = 1 << 16
            let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: size)
            defer { chunk.deallocate() }
            while !stopped {
                let n = read(fd, chunk.baseAddress!, size)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK {
                        // A non-blocking stdin with nothing to read yet is not its end: wait for
                        // data, a bounded while at a time so a stop is seen.
                        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                        _ = poll(&poller, 1, 200)
                        continue
                    }
                    readFailed(String(cString: strerror(errno)))
                    break
                }
                if n == 0 { break }
                stats?.bytesRead.add(n, ordering: .relaxed)
                splitter.feed(UnsafeBufferPointer(rebasing: chunk[0..<n])) { piece in
                    batch.append(piece)
                    batchWeight += Self.weight(of: piece)
                    if batch.count == Self.maxBatch || batchWeight >= 1024 { send() }
                }
                send()
            }
            if !stopped {
                splitter.finish {
                    batch.append($0)
                    batchWeight += Self.weight(of: $0)
                }
                send()
                deliver([], index)
            }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// The reader's input credits: a counting gate between the reader thread (which blocks) and the
/// run loop (which never does). The loop gives a command's credits back when its result is
/// written (or, ordered, when it ends while the waiting results fit `ReorderBuffer`'s limit).
final class CreditGate: Sendable {
    private struct State {
        var credits: Int
        var waitingFor: Int?
        var open = false
    }

    private let state: Mutex<State>
    private let wake = DispatchSemaphore(value: 0)
    private let capacity: Int

    init(credits: Int) {
        state = Mutex(State(credits: credits))
        capacity = credits
    }

    /// Blocks the calling thread until `n` credits are free, then takes them. A request larger
    /// than the whole window waits until every credit is back (credits then go below zero).
    func acquire(_ n: Int) {
        let needed = min(n, capacity)
        while true {
            let taken = state.withLock { s -> Bool in
                if s.open || s.credits >= needed {
                    s.credits -= n
                    return true
                }
                s.waitingFor = needed
                return false
            }
            if taken { return }
            wake.wait()
        }
    }

    /// Gives back `n` credits, waking the reader when it can go on.
    func release(_ n: Int) {
        let wakeReader = state.withLock { s -> Bool in
            s.credits += n
            if let needed = s.waitingFor, s.credits >= needed {
                s.waitingFor = nil
                return true
            }
            return false
        }
        if wakeReader { wake.signal() }
    }

    /// Whether a thread is blocked in `acquire` (for tests).
    var hasWaiter: Bool { state.withLock { $0.waitingFor != nil } }

    /// Credits not taken (negative after a request larger than the window).
    var available: Int { state.withLock { $0.credits } }

    /// Lets every acquire through from now on (used when stopping).
    func open() {
        let wakeReader = state.withLock { s -> Bool in
            s.open = true
            defer { s.waitingFor = nil }
            return s.waitingFor != nil
        }
        if wakeReader { wake.signal() }
    }
}
