import CommandPipeline
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A request body sent from a file as it goes out (uploads, `HTTPClient.upload(_:fromFile:)`,
/// multipart uploads, Gemini's resumable upload): `head` bytes from memory, then the file read
/// through its descriptor in pieces of `chunk` bytes at increasing offsets (`pread`), then `tail`
/// bytes from memory. So a large upload is never whole in memory and never copied to disk first,
/// and a request that must go out again on a fresh connection starts from the beginning. The
/// event loop never reads it itself: `HTTP1BodyReader` reads the pieces ahead on a queue of its own.
///
/// `size` (the `Content-Length`) is fixed when the body is made: head + the file's size when it
/// was opened + tail, checked (a sum past `Int.max` is refused). A file that shrinks or grows
/// while it is sent fails the request before a wrong body could complete (growth is probed one
/// byte past the announced size before the tail's first byte, or with the last piece when there
/// is no tail): `read(_:at:)` answers why, and the event loop fails the exchange with it.
final class HTTP1FileBody: @unchecked Sendable {
    private enum Source {
        /// A descriptor this body opened (and closes).
        case descriptor(Int32, path: String)
        /// A file the engine opened once (`OpenedFile`), read through its own descriptor.
        case opened(OpenedFile)
        /// Reads through a function (`pread`'s contract: the count, 0 at the end, or -errno);
        /// for tests that need a read that stalls or fails.
        case function(@Sendable (Int, UnsafeMutableRawBufferPointer) -> Int, path: String)
    }

    private let source: Source
    private let head: [UInt8]
    private let tail: [UInt8]
    /// The file's bytes as announced (its size when opened).
    let fileSize: Int
    /// The length sent as `Content-Length`: head + file + tail.
    let size: Int
    static let chunk = 256 * 1024

    /// Why the last `piece(at:)` answered empty (the loop's thread only).
    private(set) var failure: OpenedFile.Failure?

    /// Opens `file` for reading: a regular file, else the error says what it is.
    init(_ file: URL) throws {
        let fd = open(file.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw URLError(.fileDoesNotExist, userInfo: [NSLocalizedDescriptionKey: "cannot open the upload's body \(file.path)"]) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            Sockets.close(fd)
            throw URLError(.cannotOpenFile, userInfo: [NSLocalizedDescriptionKey: "the upload's body \(file.path) is not a regular file"])
        }
        source = .descriptor(fd, path: file.path)
        head = []
        tail = []
        fileSize = max(0, Int(info.st_size))
        size = fileSize
    }

    /// `head`, then `file` through its opened descriptor, then `tail` (a multipart upload).
    init(head: [UInt8], file: OpenedFile, tail: [UInt8]) throws {
        guard let size = Self.length(head: head.count, file: file.size, tail: tail.count) else {
            throw OpenedFile.Failure.refused("'\(file.path)' is too large to send (\(file.size) bytes)")
        }
        source = .opened(file)
        self.head = head
        self.tail = tail
        fileSize = file.size
        self.size = size
    }

    /// `head`, then `size` bytes read through `read` (at an offset, into a buffer: `pread`'s
    /// contract), then `tail`: a file whose reads the caller controls (tests).
    init(head: [UInt8], size fileSize: Int, path: String, tail: [UInt8], read: @escaping @Sendable (Int, UnsafeMutableRawBufferPointer) -> Int) throws {
        guard let size = Self.length(head: head.count, file: fileSize, tail: tail.count) else {
            throw OpenedFile.Failure.refused("'\(path)' is too large to send (\(fileSize) bytes)")
        }
        source = .function(read, path: path)
        self.head = head
        self.tail = tail
        self.fileSize = fileSize
        self.size = size
    }

    deinit {
        if case .descriptor(let fd, _) = source { Sockets.close(fd) }
    }

    /// head + file + tail, or nil when a part is negative or the sum passes `Int.max`.
    static func length(head: Int, file: Int, tail: Int) -> Int? {
        guard head >= 0, file >= 0, tail >= 0 else { return nil }
        let (partial, overflow1) = head.addingReportingOverflow(file)
        let (total, overflow2) = partial.addingReportingOverflow(tail)
        return overflow1 || overflow2 ? nil : total
    }

    private var path: String {
        switch source {
        case .descriptor(_, let path), .function(_, let path): path
        case .opened(let file): file.path
        }
    }

    /// Reads through the descriptor at `offset`: the count read, 0 at end of file, or -errno.
    private func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        switch source {
        case .opened(let file):
            return file.read(at: offset, into: buffer)
        case .function(let read, _):
            return read(offset, buffer)
        case .descriptor(let fd, _):
            while true {
                let n = pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
                if n < 0 && Sockets.errno == EINTR { continue }
                return n < 0 ? -Int(Sockets.errno) : n
            }
        }
    }

    /// The next piece of the body from `offset` (at most `chunk` bytes, never past `size`);
    /// empty, with `failure` set, when the file ended early, has grown past its announced size,
    /// or cannot be read.
    func piece(at offset: Int) -> [UInt8] {
        var out: [UInt8] = []
        return fill(&out, at: offset) ? out : []
    }

    /// `piece(at:)` into `out`, reusing its storage. False, with `out` empty and `failure` set,
    /// when the body cannot go on as announced. (`failure` is this object's: for one reader at
    /// a time; the transport's reader uses `read(_:at:)`.)
    func fill(_ out: inout [UInt8], at offset: Int) -> Bool {
        failure = read(&out, at: offset)
        return failure == nil
    }

    /// The piece at `offset` into `out`, reusing its storage (so a large upload does not allocate
    /// — and fault in — a fresh buffer for every piece): nil when it is there, else why the body
    /// cannot go on as announced (then `out` is empty). Touches nothing but `out` and the file:
    /// safe from any thread, also while another read of the same body is under way.
    func read(_ out: inout [UInt8], at offset: Int) -> OpenedFile.Failure? {
        let count = min(Self.chunk, max(0, size - offset))
        guard count > 0, offset >= 0 else {
            out.removeAll(keepingCapacity: true)
            return .unreadable("nothing of '\(path)' is left to send at \(offset) of \(size) bytes")
        }
        if out.count != count {
            out.removeAll(keepingCapacity: true)
            out.append(contentsOf: repeatElement(0, count: count))
        }
        let fileStart = head.count
        let fileEnd = fileStart + fileSize  // cannot overflow: checked in `size`
        var problem: OpenedFile.Failure?
        /// Before the first byte after the file goes (or as its last byte is read, when nothing
        /// follows), make sure the file did not grow: its new bytes would be left out of a body
        /// that then looks complete.
        func grew() -> OpenedFile.Failure? {
            var probe: UInt8 = 0
            let n = withUnsafeMutableBytes(of: &probe) { read(at: fileSize, into: $0) }
            if n > 0 {
                return .unreadable("'\(path)' grew while it was sent (it had \(fileSize) bytes when opened); the request was not completed; try again once it is complete")
            } else if n < 0 {
                return .unreadable("cannot read '\(path)' while sending it: \(String(cString: strerror(Int32(-n))))")
            }
            return nil
        }
        out.withUnsafeMutableBufferPointer { buffer in
            var done = 0
            var position = offset
            while done < count, problem == nil {
                if position < fileStart {
                    let n = min(count - done, fileStart - position)
                    for i in 0..<n { buffer[done + i] = head[position + i] }
                    done += n
                    position += n
                } else if position < fileEnd {
                    let wanted = min(count - done, fileEnd - position)
                    let n = read(at: position - fileStart, into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[done..<(done + wanted)]))
                    if n > 0 {
                        done += n
                        position += n
                        if position == fileEnd && tail.isEmpty { problem = grew() }
                    } else if n == 0 {
                        problem = .unreadable("'\(path)' shrank while it was sent (\(position - fileStart) of \(fileSize) bytes); nothing more was sent; try again once it is complete")
                    } else {
                        problem = .unreadable("cannot read '\(path)' while sending it: \(String(cString: strerror(Int32(-n))))")
                    }
                } else {
                    if position == fileEnd, let failure = grew() {
                        problem = failure
                        break
                    }
                    let tailStart = position - fileEnd
                    let n = min(count - done, tail.count - tailStart)
                    for i in 0..<n { buffer[done + i] = tail[tailStart + i] }
                    done += n
                    position += n
                }
            }
        }
        if problem != nil { out.removeAll(keepingCapacity: true) }
        return problem
    }
}

/// Reads an upload's body ahead of the event loop, on a thread of its own, so a file read never
/// runs on the loop's thread: a read that stalls (a file on a hung network mount) holds up its
/// own upload only — whose silence the idle timeout and the deadline then end — never the other
/// exchanges nor the other uploads' reads. (A thread, not a dispatch queue: blocked reads would
/// take the dispatch pool's few threads, which other readers and the process share.) Double
/// buffering: while the loop writes one piece, the next is read into the other buffer (two
/// buffers per upload in flight, reused piece after piece).
///
/// The loop asks `next()` for each piece and gives each written piece back (`recycle`); when
/// no piece is ready yet, `next()` answers `waiting` and `wake` is called (once, from the
/// reading thread) when one is, or when the read failed. `cancel()` (the exchange ended, the
/// connection closed) drops what is read and stops reading; a read under way finishes on its
/// thread and is discarded, and `wake` is not called after it. The thread ends with the body,
/// on `cancel()`, or after `idleLifetime` without a read to do (the next read starts another).
final class HTTP1BodyReader: @unchecked Sendable {
    enum Next {
        case piece([UInt8])
        case waiting
        case failed(OpenedFile.Failure)
    }

    private struct State {
        /// The piece read ahead, not yet taken.
        var ready: [UInt8]?
        /// Written pieces given back: the next reads go into their storage. Room for two: on a
        /// busy machine the loop gives a piece back before the read it asked for has taken the
        /// one given back before (the reading thread has not run yet); with room for one, that
        /// piece was dropped and the read after it took fresh storage.
        var spares: [[UInt8]] = []
        /// Where the next read starts.
        var offset = 0
        /// A read is asked for or under way.
        var reading = false
        var failure: OpenedFile.Failure?
        /// `next()` answered `waiting`: the read that ends next calls `wake`.
        var loopWaits = false
        var cancelled = false
        var threadRunning = false
    }

    /// How long the reading thread waits for the next read before it ends.
    static let idleLifetime: TimeInterval = 5

    let body: HTTP1FileBody
    /// Guards `state`; the reading thread waits on it for work.
    private let condition = NSCondition()
    private var state = State()
    private let wake: @Sendable () -> Void

    /// Starts reading the first piece at once (while the loop sends the request's head).
    init(_ body: HTTP1FileBody, wake: @escaping @Sendable () -> Void) {
        self.body = body
        self.wake = wake
        let spawn = locked { state in Self.startRead(&state, size: body.size) && Self.needsThread(&state) }
        if spawn { startThread() }
    }

    private func locked<T>(_ body: (inout State) -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body(&state)
    }

    /// The next piece in order, `waiting` (then `wake` follows), or why the body cannot go on.
    func next() -> Next {
        let (next, read, spawn) = locked { state -> (Next, Bool, Bool) in
            let next: Next
            if let piece = state.ready {
                state.ready = nil
                next = .piece(piece)
            } else if let failure = state.failure {
                return (.failed(failure), false, false)
            } else {
                state.loopWaits = true
                next = .waiting
            }
            let read = Self.startRead(&state, size: body.size)
            return (next, read, read && Self.needsThread(&state))
        }
        if spawn {
            startThread()
        } else if read {
            condition.signal()
        }
        return next
    }

    /// A piece the loop has written: its storage takes the next read.
    func recycle(_ piece: consuming [UInt8]) {
        // Under the lock by hand: moved into the state, not captured (and copied) by a closure.
        condition.lock()
        defer { condition.unlock() }
        if state.spares.count < 2 && !state.cancelled { state.spares.append(piece) }
    }

    func cancel() {
        locked { state in
            state.cancelled = true
            state.ready = nil
            state.spares.removeAll()
        }
        condition.signal()
    }

    /// Whether a read should start now (and marks it asked for): one at a time, one piece ahead.
    private static func startRead(_ state: inout State, size: Int) -> Bool {
        guard !state.reading, !state.cancelled, state.ready == nil, state.failure == nil, state.offset < size else { return false }
        state.reading = true
        return true
    }

    /// Whether a thread must be started for the read just asked for (none is running).
    private static func needsThread(_ state: inout State) -> Bool {
        guard !state.threadRunning else { return false }
        state.threadRunning = true
        return true
    }

    private func startThread() {
        let thread = Thread { [self] in work() }
        thread.name = "CommandPipeline upload reader"
        thread.start()
    }

    /// The reading thread: each read asked for, until cancelled, the body is read, or idle.
    private func work() {
        condition.lock()
        while true {
            while !state.reading && !state.cancelled {
                if !condition.wait(until: Date(timeIntervalSinceNow: Self.idleLifetime)) && !state.reading { break }
            }
            guard state.reading, !state.cancelled else {
                state.reading = false
                state.threadRunning = false
                condition.unlock()
                return
            }
            // Moved out of the state, never copied: the read writes into its storage in place. The
            // one given back first: the loop may still hold the last for a moment.
            var buffer = state.spares.isEmpty ? [] : state.spares.removeFirst()
            let offset = state.offset
            condition.unlock()
            let failure = body.read(&buffer, at: offset)
            condition.lock()
            state.reading = false
            guard !state.cancelled else { continue }
            if let failure {
                state.failure = failure
            } else {
                state.offset += buffer.count
                state.ready = buffer
            }
            if state.loopWaits {
                state.loopWaits = false
                condition.unlock()
                wake()
                condition.lock()
            }
        }
    }
}
