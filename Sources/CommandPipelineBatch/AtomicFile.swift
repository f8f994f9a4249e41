#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Whole-file replacement that survives a kill or a power cut at any point: the job file and
/// its manifest, and the CLI's files written whole (`--stats-json`).
package enum AtomicFile {
    /// Writes `bytes` to `path` through `path.tmp-PID`: write all, fsync, rename, fsync the
    /// directory. Returns why it failed (the old file is then untouched), or nil.
    package static func write(_ bytes: [UInt8], to path: String) -> String? {
        let temporary = "\(path).tmp-\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return "cannot create '\(temporary)': \(String(cString: strerror(errno)))" }
        var offset = 0
        var failure: String?
        bytes.withUnsafeBytes { buffer in
            while offset < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    failure = "cannot write '\(temporary)': \(String(cString: strerror(errno)))"
                    return
                }
                offset += n
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = "cannot sync '\(temporary)': \(String(cString: strerror(errno)))" }
        if close(fd) != 0 && failure == nil { failure = "cannot close '\(temporary)': \(String(cString: strerror(errno)))" }
        if let failure {
            unlink(temporary)
            return failure
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            return "cannot replace '\(path)': \(reason)"
        }
        // Not `NSString.deletingLastPathComponent`: it traps on a one-character name ("s").
        let directory = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let dfd = open(directory, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            let synced = fsync(dfd) == 0
            close(dfd)
            if !synced { return "cannot sync the directory of '\(path)': \(String(cString: strerror(errno)))" }
        }
        return nil
    }

    /// The bytes of the regular file at `path` (at most `limit`); throws `.invalid` saying
    /// why not, naming the file as `what`. A FIFO, a device or a directory is refused before
    /// it is opened, so nothing blocks on a hostile path.
    package static func read(_ path: String, limit: Int, what: String) throws(BatchError) -> [UInt8] {
        func refuse(_ why: String) -> BatchError { BatchError(.invalid, "cannot read \(what) '\(path)': \(why)") }
        var info = stat()
        guard stat(path, &info) == 0 else { throw refuse(String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw refuse("not a regular file") }
        guard info.st_size <= limit else { throw refuse("larger than \(limit >> 20) MiB") }
        guard let data = FileManager.default.contents(atPath: path) else { throw refuse(String(cString: strerror(errno))) }
        return [UInt8](data)
    }
}
