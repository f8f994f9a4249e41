import CommandPipeline
import Dispatch
import Foundation
import Synchronization

/// Reads stdin on its own thread, splits it into JSON values and hands them to the run
/// loop, waiting for free slots first: at most `inFlight` commands running and at most
/// `window` commands read but not yet written. This is what keeps memory flat.
final class InputReader: Sendable {
    let inFlightSlots: DispatchSemaphore
    let windowSlots: DispatchSemaphore
    private let fd: Int32
    private let stopFlag = Atomic<Bool>(false)

    init(fd: Int32, inFlight: Int, window: Int) {
        self.fd = fd
        inFlightSlots = DispatchSemaphore(value: inFlight)
        windowSlots = DispatchSemaphore(value: window)
    }

    func stop() { stopFlag.store(true, ordering: .releasing) }

    /// Starts the thread; `deliver` gets each piece with its 0-based index, then `nil` at the end.
    func start(deliver: @escaping @Sendable (JSONStreamSplitter.Piece?, Int) -> Void, readFailed: @escaping @Sendable (String) -> Void) {
        let thread = Thread { [self] in
            var splitter = JSONStreamSplitter()
            var index = 0
            let size = 1 << 16
            let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: size)
            defer { chunk.deallocate() }
            reading: while !stopFlag.load(ordering: .acquiring) {
                let n = read(fd, chunk.baseAddress!, size)
                if n < 0 {
                    if errno == EINTR { continue }
                    readFailed(String(cString: strerror(errno)))
                    break
                }
                if n == 0 { break }
                var stopNow = false
                splitter.feed(UnsafeBufferPointer(rebasing: chunk[0..<n])) { piece in
                    guard !stopNow else { return }
                    windowSlots.wait()
                    inFlightSlots.wait()
                    if stopFlag.load(ordering: .acquiring) {
                        stopNow = true
                        return
                    }
                    deliver(piece, index)
                    index += 1
                }
                if stopNow { break reading }
            }
            if !stopFlag.load(ordering: .acquiring) {
                splitter.finish { piece in
                    windowSlots.wait()
                    inFlightSlots.wait()
                    deliver(piece, index)
                    index += 1
                }
            }
            deliver(nil, index)
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

