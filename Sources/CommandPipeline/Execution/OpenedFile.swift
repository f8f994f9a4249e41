#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Synchronization

/// A local file opened once, checked through its descriptor, and read only through it.
///
/// Checking a path and opening it again later lets anyone who can swap a symbolic link in
/// between read something else. So the engine opens each file exactly once
/// (`FileResolver.open`), checks what it really opened (a regular file, inside the files
/// root, by the descriptor's own path), and every later read — hashing, uploading — goes
/// through that descriptor with `pread`. Reads run on a dispatch queue, never on the
/// concurrency pool's few threads, in chunks that check for cancellation, so a huge file
/// cannot stall other commands, `--timeout` or Ctrl-C.
package final class OpenedFile: Sendable {
    /// The path the command named, resolved: for messages.
    public let path: String
    /// The path of the file really opened (symbolic links resolved).
    public let realPath: String
    public let size: Int
    /// Device, inode, size and modification time: equal identities are the same file content.
    package let identity: Identity
    private let descriptor: Int32

    package struct Identity: Sendable, Hashable {
        public var device: UInt64
        public var inode: UInt64
        public var size: Int
        public var modifiedNanoseconds: Int64
    }

    /// Why a file could not be opened: `refused` when the command is at fault (a FIFO, a
    /// directory, a path leaving the files root), `unreadable` when the file is missing or denied.
    package enum Failure: Error, Sendable, Hashable {
        case refused(String)
        case unreadable(String)

        public var message: String {
            switch self {
            case .refused(let m), .unreadable(let m): m
            }
        }
    }

    /// Opens `path` (absolute) for reading without blocking, and checks it is a regular file
    /// of at most `maximumBytes`.
    public static func open(_ path: String, maximumBytes: Int = FileResolver.defaultMaximumFileBytes) -> Result<OpenedFile, Failure> {
        // Look before opening: opening a device can have effects of its own (a tape rewinds, a
        // watchdog arms), so only what looks like a regular file is opened at all. What was
        // opened is checked again on the descriptor below, so a swap in between is refused too.
        var named = stat()
        if stat(path, &named) == 0, (named.st_mode & S_IFMT) != S_IFREG {
            return .failure(.refused("'\(path)' is \(describe(mode: named.st_mode)), not a regular file; name a regular file"))
        }
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        let fd = openForReading(path)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            return .failure(.unreadable("cannot open '\(path)': \(reason)"))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            return .failure(.unreadable("cannot read '\(path)': \(reason)"))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return .failure(.refused("'\(path)' is \(describe(mode: info.st_mode)), not a regular file; name a regular file"))
        }
        let size = Int(info.st_size)
        guard size <= maximumBytes else {
            close(fd)
            return .failure(.refused("'\(path)' has \(size) bytes, more than the limit of \(maximumBytes) bytes for one file"))
        }
        let identity = Identity(
            device: UInt64(truncatingIfNeeded: info.st_dev), inode: UInt64(truncatingIfNeeded: info.st_ino), size: size,
            modifiedNanoseconds: modifiedNanoseconds(info))
        return .success(OpenedFile(path: path, realPath: descriptorPath(fd) ?? path, size: size, identity: identity, descriptor: fd))
    }

    private init(path: String, realPath: String, size: Int, identity: Identity, descriptor: Int32) {
        self.path = path
        self.realPath = realPath
        self.size = size
        self.identity = identity
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Calls `body` with each chunk of the file in order, on a dispatch queue; stops early when
    /// the calling task is cancelled (throwing `CancellationError`) or `body` throws.
    public func forEachChunk(size chunkSize: Int = 1 << 20, _ body: @escaping @Sendable (UnsafeRawBufferPointer) throws -> Void) async throws {
        let cancelled = CancellationFlag()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                DispatchQueue.global(qos: .utility).async { [self] in
                    continuation.resume(with: Result { try readAll(chunkSize: chunkSize, cancelled: cancelled, body) })
                }
            }
        } onCancel: {
            cancelled.set()
        }
    }

    /// Reads up to `buffer.count` bytes at `offset` through the descriptor (`pread`, again on
    /// `EINTR`), on the calling thread: the count read, 0 at end of file, or -errno. For a
    /// transport that streams the file as it sends it (a multipart upload); it checks the size.
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard offset >= 0, let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let n = pread(descriptor, base, buffer.count, off_t(offset))
            if n < 0 && errno == EINTR { continue }
            return n < 0 ? -Int(errno) : n
        }
    }

    /// The whole file in memory (for providers that send files inline or hash them).
    public func contents() async throws -> Data {
        let collected = Mutex(Data(capacity: size))
        try await forEachChunk { chunk in collected.withLock { $0.append(contentsOf: chunk) } }
        return collected.withLock { $0 }
    }

    private func readAll(chunkSize: Int, cancelled: CancellationFlag, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, chunkSize), alignment: 16)
        defer { buffer.deallocate() }
        // Exactly the size that was checked: a file that grows or shrinks while it is read is
        // refused, so `maximumBytes` holds and a half-changed file is never sent.
        var offset = 0
        while true {
            if cancelled.isSet { throw CancellationError() }
            let wanted = offset < size ? min(buffer.count, size - offset) : 1
            let n = pread(descriptor, buffer.baseAddress, wanted, off_t(offset))
            if n < 0 {
                if errno == EINTR { continue }
                throw OpenedFile.Failure.unreadable("cannot read '\(path)': \(String(cString: strerror(errno)))")
            }
            if offset >= size {
                if n == 0 { return }
                throw OpenedFile.Failure.unreadable("'\(path)' grew while it was read (it had \(size) bytes when opened); try again once it is complete")
            }
            if n == 0 {
                throw OpenedFile.Failure.unreadable("'\(path)' shrank while it was read (\(offset) of \(size) bytes); try again once it is complete")
            }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += n
        }
    }

    /// The path the kernel has for an open descriptor: what was really opened, links resolved.
    static func descriptorPath(_ fd: Int32) -> String? {
        #if os(Linux)
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #else
        var buffer = [CChar](repeating: 0, count: Int(MAXPATHLEN) + 1)
        guard fcntl(fd, F_GETPATH, &buffer) == 0 else { return nil }
        return String(cString: buffer)
        #endif
    }

    private static func describe(mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a regular file"
        }
    }

    private static func modifiedNanoseconds(_ info: stat) -> Int64 {
        #if os(Linux)
        Int64(info.st_mtim.tv_sec).multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ Int64(info.st_mtim.tv_nsec)
        #else
        Int64(info.st_mtimespec.tv_sec).multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ Int64(info.st_mtimespec.tv_nsec)
        #endif
    }
}

/// `open(2)` for reading, without following into a FIFO's wait or taking a terminal.
private func openForReading(_ path: String) -> Int32 {
    #if canImport(Glibc)
    Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
    #else
    Darwin.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
    #endif
}

/// Set from a cancellation handler, read by a loop on another thread.
private final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
