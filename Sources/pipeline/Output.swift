#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes result lines to a file descriptor. Into a pipe or terminal each line is written
/// at once, so a consumer sees results as they finish; into a file, lines are gathered
/// into large writes.
final class LineWriter {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private let lineByLine: Bool
    /// Set when the reader went away (EPIPE): further output is dropped.
    private(set) var broken = false

    init(fd: Int32) {
        self.fd = fd
        var info = stat()
        let isPipe = fstat(fd, &info) == 0 && ((info.st_mode & S_IFMT) == S_IFIFO || (info.st_mode & S_IFMT) == S_IFSOCK)
        lineByLine = isPipe || isatty(fd) == 1
        buffer.reserveCapacity(1 << 17)
    }

    func write(_ line: [UInt8]) {
        buffer.append(contentsOf: line)
        if lineByLine || buffer.count >= 1 << 16 { flush() }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        defer { buffer.removeAll(keepingCapacity: true) }
        guard !broken else { return }
        var written = 0
        buffer.withUnsafeBytes { raw in
            while written < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if n > 0 {
                    written += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    broken = true
                    return
                }
            }
        }
    }
}

/// Human-facing text goes to stderr only.
enum StandardError {
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { if n < 0 && errno == EINTR { continue } else { return } }
                offset += n
            }
        }
    }

    static var isTerminal: Bool { isatty(2) == 1 }
}
