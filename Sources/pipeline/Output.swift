#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// `write(2)`, named through its C library (the writers here have `write` methods of their own).
func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(fd, bytes, count)
    #else
    Darwin.write(fd, bytes, count)
    #endif
}

/// Writes result lines to a file descriptor. Into a pipe or terminal each line is written
/// at once, so a consumer sees results as they finish; into a file, lines are gathered
/// into large writes.
///
/// A write error (disk full, `/dev/full`, a closed pipe or stdout) is final: `failure` holds
/// its errno, nothing more is written, and the run loop ends the run with exit status 3. Lines
/// are only ever handed to `write(2)` whole, but the kernel may accept part of a buffer before
/// failing (a disk filling up mid-write). Into a regular file the writer then truncates the file
/// back to the end of the last whole line, so every line in it stays whole; into a pipe a torn
/// tail cannot be taken back, but a pipe only fails when its reader is gone.
///
/// Thread-safe: in events mode every command's task writes its event lines as they happen,
/// without a hop through the run loop (one lock per line instead of a task switch).
final class LineWriter: Sendable {
    private struct State {
        var buffer: [UInt8] = []
        var bufferedLines = 0
        var failure: Int32?
        var linesWritten = 0
    }

    private let fd: Int32
    private let lineByLine: Bool
    private let isRegularFile: Bool
    private let state: Mutex<State>

    /// The errno that ended output; nothing is written after it.
    var failure: Int32? { state.withLock { $0.failure } }
    /// Lines handed to the kernel whole.
    var linesWritten: Int { state.withLock { $0.linesWritten } }

    init(fd: Int32) {
        self.fd = fd
        var info = stat()
        let known = fstat(fd, &info) == 0
        let kind = info.st_mode & S_IFMT
        lineByLine = (known && (kind == S_IFIFO || kind == S_IFSOCK)) || isatty(fd) == 1
        isRegularFile = known && kind == S_IFREG
        var initial = State()
        initial.buffer.reserveCapacity(1 << 17)
        state = Mutex(initial)
    }

    /// Queues one line (ending in a newline); false once output has failed.
    @discardableResult
    func write(_ line: [UInt8]) -> Bool {
        state.withLock { s in
            guard s.failure == nil else { return false }
            if line.count >= Self.directLineBytes {
                // A large line goes to the kernel from its own bytes: copied into the buffer, it
                // would be held twice, and the buffer would keep its size for the rest of the run.
                guard flush(&s) else { return false }
                return line.withUnsafeBytes { send($0, lines: 1, &s) }
            }
            s.buffer.append(contentsOf: line)
            s.bufferedLines += 1
            if lineByLine || s.buffer.count >= 1 << 16 { return flush(&s) }
            return true
        }
    }

    /// Writes bytes that are not a result line (the newline that ends a torn line before a resumed run).
    @discardableResult
    func writeSeparator(_ bytes: [UInt8]) -> Bool {
        state.withLock { s in
            guard s.failure == nil else { return false }
            s.buffer.append(contentsOf: bytes)
            return flush(&s)
        }
    }

    /// Writes everything queued; false (and `failure` set) when the write failed.
    @discardableResult
    func flush() -> Bool { state.withLock { flush(&$0) } }

    /// Lines at least this long are written from their own bytes, not through the buffer.
    static let directLineBytes = 1 << 16

    private func flush(_ s: inout State) -> Bool {
        guard s.failure == nil else { return false }
        guard !s.buffer.isEmpty else { return true }
        var buffer: [UInt8] = []
        swap(&buffer, &s.buffer)
        let lines = s.bufferedLines
        s.bufferedLines = 0
        let sent = buffer.withUnsafeBytes { send($0, lines: lines, &s) }
        buffer.removeAll(keepingCapacity: sent)
        swap(&buffer, &s.buffer)
        return sent
    }

    /// Hands `raw` (whole lines) to the kernel; false (and `failure` set) when the write failed.
    private func send(_ raw: UnsafeRawBufferPointer, lines: Int, _ s: inout State) -> Bool {
        var written = 0
        let fd = self.fd
        var error: Int32?
        while written < raw.count {
            let n = systemWrite(fd, raw.baseAddress! + written, raw.count - written)
            if n > 0 {
                written += n
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                // A non-blocking stdout: wait until it takes more.
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&poller, 1, 1000)
            } else {
                error = n < 0 ? errno : EIO
                break
            }
        }
        if let error {
            s.failure = error
            // Lines fully written before the failure count; a torn tail is taken back if possible.
            let bytes = UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: written)
            let whole = bytes.lastIndex(of: 0x0a).map { $0 + 1 } ?? 0
            s.linesWritten += bytes[..<whole].reduce(0) { $0 + ($1 == 0x0a ? 1 : 0) }
            let torn = written - whole
            if torn > 0 && isRegularFile {
                let end = lseek(fd, 0, SEEK_CUR)
                if end >= torn { _ = ftruncate(fd, end - off_t(torn)) }
            }
            s.buffer.removeAll(keepingCapacity: false)
            s.bufferedLines = 0
            return false
        }
        s.linesWritten += lines
        return true
    }

    /// Output failed without a write seeing it (the pipe's reader went away): nothing more is written.
    func markFailed(_ error: Int32) {
        state.withLock { s in
            guard s.failure == nil else { return }
            s.failure = error
            s.buffer.removeAll(keepingCapacity: false)
            s.bufferedLines = 0
        }
    }

    /// The failure as text, e.g. "No space left on device".
    var failureText: String? { failure.map { String(cString: strerror($0)) } }
}

/// Human-facing text goes to stderr only.
enum StandardError {
    /// Writes `text` with every control character but the newline escaped (`oneLine`'s
    /// spelling), so no text on stderr can drive a terminal, whatever it quotes. Text from
    /// input also goes through `oneLine` where it is quoted, so it cannot forge a line either.
    static func write(_ text: String) {
        writeRaw(escapingControls(text))
    }

    /// Writes `text` as it is: only for the CLI's own terminal control (the live progress line).
    static func writeRaw(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = systemWrite(2, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { if n < 0 && errno == EINTR { continue } else { return } }
                offset += n
            }
        }
    }

    static var isTerminal: Bool { isatty(2) == 1 }

    /// `text` with control characters other than `\n` escaped as `oneLine` does.
    static func escapingControls(_ text: String) -> String {
        guard text.utf8.contains(where: { ($0 < 0x20 && $0 != 0x0a) || $0 == 0x7f || $0 == 0xc2 }) else { return text }
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { oneLine(String($0)) }.joined(separator: "\n")
    }

    /// `text` fit for one stderr line: control characters (newlines, escapes that would drive a
    /// terminal) written as `\n`, `\r`, `\t` or `\u{XX}`, so text from a hook or a server can
    /// neither forge another line nor reach the terminal raw.
    static func oneLine(_ text: String) -> String {
        var line = ""
        line.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value):
                line += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: line.unicodeScalars.append(scalar)
            }
        }
        return line
    }
}

/// The standard descriptors as the process found them.
///
/// A descriptor closed at startup (`pipeline <&-`) would be reused by the next `open` or
/// `pipe` — the signal self-pipe became stdin and the CLI read its own signals. `secure()`
/// runs first thing in `main`: it puts `/dev/null` on each closed descriptor (so no file the
/// CLI opens lands there) and remembers which were closed, so the run reports them: a closed
/// stdin is an unreadable stdin (exit 2), a closed stdout is output that cannot be written (exit 3).
enum StandardStreams {
    private static let closed = Atomic<UInt8>(0)   // bit 0: stdin, bit 1: stdout
    static var stdinClosed: Bool { closed.load(ordering: .relaxed) & 1 != 0 }
    static var stdoutClosed: Bool { closed.load(ordering: .relaxed) & 2 != 0 }

    static func secure() {
        for fd: Int32 in [0, 1, 2] where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let opened = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
            if opened >= 0 && opened != fd {
                _ = dup2(opened, fd)
                close(opened)
            }
            if fd < 2 { closed.bitwiseOr(UInt8(1) << UInt8(fd), ordering: .relaxed) }
        }
    }

    /// Writes text to stdout (help, version, capabilities); false when it could not be written.
    static func writeStdout(_ text: String) -> Bool {
        if stdoutClosed {
            return false
        }
        let writer = LineWriter(fd: 1)
        return writer.write(Array(text.utf8)) && writer.flush()
    }
}
