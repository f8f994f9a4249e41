import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A request body sent from a file as it goes out (uploads, `HTTPClient.upload(_:fromFile:)`):
/// the event loop reads it in pieces of `chunk` bytes at increasing offsets (`pread`), so a large
/// upload is never whole in memory, and a request that must go out again on a fresh connection
/// starts from the beginning. Opened when the request is made; closed when the last reference goes.
final class HTTP1FileBody: @unchecked Sendable {
    let fd: Int32
    /// The length sent as `Content-Length`, fixed when opened: a file that shrinks fails the request.
    let size: Int
    static let chunk = 256 * 1024

    /// Opens `file` for reading: a regular file, else the error says what it is.
    init(_ file: URL) throws {
        let fd = open(file.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw URLError(.fileDoesNotExist, userInfo: [NSLocalizedDescriptionKey: "cannot open the upload's body \(file.path)"]) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            Sockets.close(fd)
            throw URLError(.cannotOpenFile, userInfo: [NSLocalizedDescriptionKey: "the upload's body \(file.path) is not a regular file"])
        }
        self.fd = fd
        size = Int(info.st_size)
    }

    deinit { Sockets.close(fd) }

    /// The next piece from `offset` (at most `chunk` bytes, never past `size`); empty when the
    /// file ended early or cannot be read.
    func piece(at offset: Int) -> [UInt8] {
        let count = min(Self.chunk, max(0, size - offset))
        guard count > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset + done))
                if n > 0 {
                    done += n
                } else if n < 0 && Sockets.errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            initialized = done
        }
    }
}
