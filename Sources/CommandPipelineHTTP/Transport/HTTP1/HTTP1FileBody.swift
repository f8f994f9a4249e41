import CommandPipeline
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A request body sent from a file as it goes out (uploads, `HTTPClient.upload(_:fromFile:)`,
/// multipart uploads): `head` bytes from memory, then the file read through its descriptor in
/// pieces of `chunk` bytes at increasing offsets (`pread`), then `tail` bytes from memory. So a
/// large upload is never whole in memory and never copied to disk first, and a request that must
/// go out again on a fresh connection starts from the beginning.
///
/// `size` (the `Content-Length`) is fixed when the body is made: head + the file's size when it
/// was opened + tail, checked (a sum past `Int.max` is refused). A file that shrinks or grows
/// while it is sent fails the request before a wrong body could complete: `piece(at:)` answers
/// empty and `failure` says what happened (the event loop fails the exchange with it).
final class HTTP1FileBody: @unchecked Sendable {
    private enum Source {
        /// A descriptor this body opened (and closes).
        case descriptor(Int32, path: String)
        /// A file the engine opened once (`OpenedFile`), read through its own descriptor.
        case opened(OpenedFile)
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
        case .descriptor(_, let path): path
        case .opened(let file): file.path
        }
    }

    /// Reads through the descriptor at `offset`: the count read, 0 at end of file, or -errno.
    private func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        switch source {
        case .opened(let file):
            return file.read(at: offset, into: buffer)
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

    /// `piece(at:)` into `out`, reusing its storage (the loop keeps one per connection, so a
    /// large upload does not allocate — and fault in — a fresh buffer for every piece). False,
    /// with `out` empty and `failure` set, when the body cannot go on as announced.
    func fill(_ out: inout [UInt8], at offset: Int) -> Bool {
        failure = nil
        let count = min(Self.chunk, max(0, size - offset))
        guard count > 0, offset >= 0 else {
            out.removeAll(keepingCapacity: true)
            return false
        }
        if out.count != count {
            out.removeAll(keepingCapacity: true)
            out.append(contentsOf: repeatElement(0, count: count))
        }
        let fileStart = head.count
        let fileEnd = fileStart + fileSize  // cannot overflow: checked in `size`
        var problem: OpenedFile.Failure?
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
                    } else if n == 0 {
                        problem = .unreadable("'\(path)' shrank while it was sent (\(position - fileStart) of \(fileSize) bytes); nothing more was sent; try again once it is complete")
                    } else {
                        problem = .unreadable("cannot read '\(path)' while sending it: \(String(cString: strerror(Int32(-n))))")
                    }
                } else {
                    // Past the file: before its first tail byte goes, make sure the file did not grow
                    // (its new bytes would be left out of a body that then looks complete).
                    if position == fileEnd {
                        var probe: UInt8 = 0
                        let n = withUnsafeMutableBytes(of: &probe) { read(at: fileSize, into: $0) }
                        if n > 0 {
                            problem = .unreadable("'\(path)' grew while it was sent (it had \(fileSize) bytes when opened); the request was not completed; try again once it is complete")
                            break
                        } else if n < 0 {
                            problem = .unreadable("cannot read '\(path)' while sending it: \(String(cString: strerror(Int32(-n))))")
                            break
                        }
                    }
                    let tailStart = position - fileEnd
                    let n = min(count - done, tail.count - tailStart)
                    for i in 0..<n { buffer[done + i] = tail[tailStart + i] }
                    done += n
                    position += n
                }
            }
        }
        failure = problem
        if problem != nil { out.removeAll(keepingCapacity: true) }
        return problem == nil
    }
}
