#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CommandPipeline
import CommandPipelineBatch
import Synchronization

/// What an earlier results file says already succeeded, and the rule that decides which
/// commands of this run to skip (Design/wire-format.md, "Resume").
///
/// Every result line of `run` carries `input_hash`, a digest of its command's exact input
/// bytes. A command is skipped only when a succeeded record has its `id` *and* its
/// `input_hash`: the same command, wherever it now stands in the input. Each succeeded record
/// skips at most one command (in input order), so a repeated command runs as often as it did
/// not succeed. A command that did not succeed is never skipped: an id is not enough, however
/// the input changed. Records without `input_hash` (older versions) are not trusted.
final class ResumeLedger: Sendable {
    struct Key: Hashable, Sendable {
        var id: String
        var hash: String
    }

    /// Per id and input digest: how many succeeded records are not yet claimed.
    private let unclaimed: Mutex<[Key: Int]>
    let isEmpty: Bool

    init(succeeded: [Key: Int]) {
        unclaimed = Mutex(succeeded)
        isEmpty = succeeded.isEmpty
    }

    /// Whether the command `id` with input digest `hash` is skipped (and claims a success if so).
    func claim(id: String, hash: String) -> Bool {
        unclaimed.withLock { table in
            let key = Key(id: id, hash: hash)
            guard let left = table[key], left > 0 else { return false }
            table[key] = left == 1 ? nil : left - 1
            return true
        }
    }

    /// FNV-1a, 64 bits, as 16 hex digits: the digest written as `input_hash` (`InputDigest`,
    /// which batch collect writes too, so `--resume` works on a collected file).
    static func digest(_ bytes: [UInt8]) -> String { InputDigest.of(bytes) }

    /// The digest's 16 hex digits appended to `out` (what every result line carries, so
    /// written without making a string).
    static func appendDigest(of bytes: [UInt8], to out: inout [UInt8]) { InputDigest.append(of: bytes, to: &out) }
    /// The digest as a number, for `ResultWriter`'s `inputHash`.
    static func digestValue(of bytes: [UInt8]) -> UInt64 { InputDigest.value(of: bytes) }
}

enum Resume {
    /// What reading the file found: the succeeded ids with their indices, and whether the
    /// file ends in the middle of a line (a crash mid-write).
    struct Scan {
        var succeeded: [ResumeLedger.Key: Int] = [:]
        var endsWithoutNewline = false
        var device: UInt64 = 0
        var inode: UInt64 = 0
    }

    /// Streams FILE: every complete, parseable `succeeded` record counts; a torn last line
    /// or any line that does not parse is ignored (it is re-run, never trusted).
    static func scan(_ path: String) throws(UsageError) -> Scan {
        // Non-blocking: a FIFO must not hang the start; it is refused just below.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            throw UsageError(message: "cannot read --resume file '\(path)': \(String(cString: strerror(errno))); give an earlier results file (it may be empty)")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw UsageError(message: "cannot read --resume file '\(path)': \(String(cString: strerror(errno)))")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw UsageError(message: "--resume '\(path)' is a directory; give an earlier results file (it may be empty)")
        }
        // Only a regular file is a results file (/dev/null stands for "no earlier results"):
        // /dev/zero would be read forever, a FIFO would wait for a writer.
        if (info.st_mode & S_IFMT) != S_IFREG {
            if path == "/dev/null" { return Scan(device: UInt64(info.st_dev), inode: UInt64(info.st_ino)) }
            throw UsageError(message: "--resume '\(path)' is not a regular file; give an earlier results file (it may be empty)")
        }
        var scan = Scan(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        var splitter = JSONStreamSplitter()
        func take(_ piece: JSONStreamSplitter.Piece) {
            guard case .success(.object(let record)) = piece.parse(), record["status"] == "succeeded",
                case .string(let id)? = record["id"], case .string(let hash)? = record["input_hash"]
            else { return }
            scan.succeeded[ResumeLedger.Key(id: id, hash: hash), default: 0] += 1
        }
        let size = 1 << 16
        let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: size)
        defer { chunk.deallocate() }
        var last: UInt8 = 0x0a
        var pending: [UInt8] = []   // the current line, so a torn last line is never parsed
        var discarding = false
        while true {
            let n = read(fd, chunk.baseAddress!, size)
            if n < 0 {
                if errno == EINTR { continue }
                throw UsageError(message: "cannot read --resume file '\(path)': \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            let bytes = UnsafeBufferPointer(rebasing: chunk[0..<n])
            last = bytes[n - 1]
            // Feed whole lines only; keep the tail of the last line for the next chunk.
            var from = 0
            if discarding {
                guard let end = bytes.firstIndex(of: 0x0a) else { continue }
                discarding = false
                from = end + 1
            }
            if let end = bytes.lastIndex(of: 0x0a), end >= from {
                if !pending.isEmpty {
                    splitter.feed(pending, take)
                    pending.removeAll(keepingCapacity: true)
                }
                splitter.feed(UnsafeBufferPointer(rebasing: bytes[from...end]), take)
                pending.append(contentsOf: bytes[(end + 1)...])
            } else {
                pending.append(contentsOf: bytes[from...])
            }
            if pending.count > JSONStreamSplitter.maximumValueBytes {
                // A line this long is none of our records: skip it to its end (it is never trusted).
                pending = []
                discarding = true
            }
        }
        splitter.finish(take)
        scan.endsWithoutNewline = last != 0x0a
        return scan
    }

    /// Whether `fd` is the file that was scanned (e.g. `--resume out.jsonl >> out.jsonl`).
    static func isSameFile(_ fd: Int32, as scan: Scan) -> Bool {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return false }
        return UInt64(info.st_dev) == scan.device && UInt64(info.st_ino) == scan.inode
    }
}
