#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Appends each result record as one line to a file, and makes the file durable when the run
/// ends (`fsync` of the file, and of its directory when the sink created it).
///
/// The file is opened for appending when the sink is made (created with mode 0644 if missing),
/// so a bad path fails at once, before any command runs. Each record is handed to `write(2)`
/// whole; a write that fails (disk full) throws, and a line the kernel took only part of is cut
/// back off the file, so every line in it stays whole.
public final class JSONLinesFileSink: ResultSink {
    public let name: String
    public let priority: Int
    public let path: String
    private let filter: (@Sendable (ResultDelivery) -> Bool)?
    private let file: Mutex<Int32>   // the descriptor; -1 once closed
    private let created: Bool

    /// Why the sink could not write.
    package struct WriteError: Error, CustomStringConvertible {
        public var operation: String
        public var path: String
        public var errno: Int32
        public var description: String { "cannot \(operation) \(path): \(String(cString: strerror(errno)))" }
    }

    /// Opens `path` for appending. Throws `WriteError` when it cannot be opened.
    /// - Parameter filter: when given, only deliveries it accepts are written (`enabled(for:)`).
    public init(path: String, priority: Int = 100, filter: (@Sendable (ResultDelivery) -> Bool)? = nil) throws {
        self.path = path
        self.priority = priority
        self.filter = filter
        name = "jsonl(\(path))"
        let existed = access(path, F_OK) == 0
        // Non-blocking and without taking a terminal: a FIFO must not hang the open (and is
        // refused, like a directory or socket); a device is written through, never replaced.
        // (The CLI takes regular files only: Sources/pipeline/PathArguments.swift.)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0o644)
        guard fd >= 0 else { throw WriteError(operation: "open", path: path, errno: errno) }
        var info = stat()
        let type = fstat(fd, &info) == 0 ? info.st_mode & S_IFMT : S_IFSOCK
        if type == S_IFDIR || type == S_IFIFO || type == S_IFSOCK {
            close(fd)
            throw WriteError(operation: "open", path: path, errno: type == S_IFDIR ? EISDIR : EINVAL)
        }
        if type != S_IFREG {
            // A device: writes wait for it as they did before (no O_NONBLOCK from here on).
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        }
        file = Mutex(fd)
        created = !existed
    }

    deinit {
        file.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    public func enabled(for delivery: ResultDelivery) -> Bool { filter?(delivery) ?? true }

    public func deliver(_ delivery: ResultDelivery) async throws {
        let path = self.path
        try file.withLock { fd throws(WriteError) in
            guard fd >= 0 else { throw WriteError(operation: "write to", path: path, errno: EBADF) }
            var written = 0
            var failure: Int32?
            if delivery.record.count < 1 << 16 {
                // One write of the line.
                var line: [UInt8] = []
                line.reserveCapacity(delivery.record.count + 1)
                line.append(contentsOf: delivery.record)
                line.append(0x0a)
                failure = line.withUnsafeBytes { Self.writeAll($0, to: fd, written: &written) }
            } else {
                // A large record from the bytes the run holds (not copied), then its newline.
                failure = delivery.record.withUnsafeBytes { Self.writeAll($0, to: fd, written: &written) }
                if failure == nil {
                    let newline: UInt8 = 0x0a
                    failure = withUnsafeBytes(of: newline) { Self.writeAll($0, to: fd, written: &written) }
                }
            }
            if let failure {
                // Keep every line whole: take back the part of this one the kernel accepted.
                if written > 0 {
                    let end = lseek(fd, 0, SEEK_END)
                    if end >= written { _ = ftruncate(fd, end - off_t(written)) }
                }
                throw WriteError(operation: "write to", path: path, errno: failure)
            }
        }
    }

    /// Writes all of `raw`, adding what the kernel took to `written`; the errno that stopped it, or nil.
    private static func writeAll(_ raw: UnsafeRawBufferPointer, to fd: Int32, written: inout Int) -> Int32? {
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n > 0 {
                offset += n
                written += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return n < 0 ? errno : EIO
            }
        }
        return nil
    }

    /// Flushes the file to disk and closes it.
    public func finish() async throws {
        let path = self.path
        let created = self.created
        try file.withLock { fd throws(WriteError) in
            guard fd >= 0 else { return }
            defer {
                close(fd)
                fd = -1
            }
            // EINVAL: a descriptor that cannot be synced (a device such as /dev/null): nothing to make durable.
            guard fsync(fd) == 0 || errno == EINVAL else { throw WriteError(operation: "fsync", path: path, errno: errno) }
            if created {
                // A new file's name is durable only once its directory is.
                let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
                let dirfd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_CLOEXEC)
                if dirfd >= 0 {
                    _ = fsync(dirfd)
                    close(dirfd)
                }
            }
        }
    }
}
