#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CommandPipelineBatch
import Foundation

/// The one rule for every path a flag names (`Design/security.md`, "Path arguments"):
///
/// - the final target (symbolic links followed) is a **regular file**, or — for a file the run
///   writes — does not exist yet; a file the run writes may also be a **character device**
///   (`/dev/null`, `/dev/stderr`), which is written through, never replaced. Anything else (a
///   directory, FIFO, socket, block device; a device to read) is refused at start with a usage
///   error (exit 2): nothing is opened first, so no open can block (a FIFO without a writer);
/// - a file written whole (`--stats-json`) is written by rename next to its final target, so a
///   symbolic link stays a link and its target is replaced, never the link or a device;
/// - a regular file the run writes must not be stdout's file: results would be interleaved
///   with, or replaced by, what the run writes there.
///
/// `--resume` keeps its own reader (non-blocking open, `fstat`), which follows the same rule and
/// also takes `/dev/null` for "no earlier results".
enum PathArgument {
    enum Use {
        /// Read at start (`--models`): a regular file.
        case read
        /// Appended to (`--sink jsonl:`): a regular file, a new one, or a character device.
        case append
        /// A database (`--sink sqlite:`): a regular file or a new one.
        case database
        /// Written whole at the end (`--stats-json`): by rename for a regular or new file,
        /// written through for a character device.
        case replace
    }

    /// Where a checked path leads.
    enum Target: Equatable {
        /// A regular file, or one to create: the path to open (for `.replace`, a link's final target).
        case file(String)
        /// A character device (`/dev/null`, `/dev/stderr`): written through, never replaced.
        case device(String)

        var path: String {
            switch self {
            case .file(let path), .device(let path): path
            }
        }
    }

    /// Checks `path` for `use`. `option` names the flag in messages, e.g. "--stats-json" or
    /// "--sink jsonl:".
    static func check(_ path: String, option: String, use: Use) throws(UsageError) -> Target {
        let shown = option.hasSuffix(":") ? "\(option)\(path)" : "\(option) \(path)"
        var linkInfo = stat()
        guard lstat(path, &linkInfo) == 0 else {
            let reason = errno
            // Created by the run (a missing directory is the write's failure, at the end: exit 3).
            if reason == ENOENT && use != .read { return .file(path) }
            throw UsageError(message: "option '\(shown)': cannot open \(path): \(String(cString: strerror(reason)))")
        }
        var info = linkInfo
        let isLink = (linkInfo.st_mode & S_IFMT) == S_IFLNK
        if isLink {
            guard stat(path, &info) == 0 else {
                throw UsageError(message: "option '\(shown)': cannot open \(path): a symbolic link to nothing (\(String(cString: strerror(errno))))")
            }
        }
        let type = info.st_mode & S_IFMT
        if type == S_IFCHR && (use == .append || use == .replace) { return .device(path) }
        guard type == S_IFREG else {
            throw UsageError(
                message: "option '\(shown)': \(describe(info.st_mode)), not a regular file; give the path of a regular file\(use == .read ? "" : " (or of one to create)")")
        }
        if use != .read, isStdout(info) {
            throw UsageError(message: "option '\(shown)': this is the file stdout writes to; results and what \(option) writes would overwrite each other: give another file")
        }
        guard use == .replace, isLink else { return .file(path) }
        guard let resolved = realpath(path, nil) else {
            throw UsageError(message: "option '\(shown)': cannot resolve the link (\(String(cString: strerror(errno))))")
        }
        defer { free(resolved) }
        return .file(String(cString: resolved))
    }

    /// The one write of a file written whole (`--stats-json` of `run` and of `report`): the rule
    /// checked again (the target may have changed since the check at start, `checked`), then a
    /// regular or new file replaced by rename (`AtomicFile`, a link's target, never the link) or a
    /// character device written through (never replaced). Returns why it failed, or nil.
    static func writeWhole(_ bytes: [UInt8], to path: String, option: String, checked: Target?) -> String? {
        do throws(UsageError) {
            switch try check(checked?.path ?? path, option: option, use: .replace) {
            case .file(let target): return AtomicFile.write(bytes, to: target)
            case .device(let device): return writeThrough(bytes, to: device)
            }
        } catch {
            return error.message
        }
    }

    /// Writes `bytes` to a character device, through (never replacing it). Returns why it failed, or nil.
    static func writeThrough(_ bytes: [UInt8], to path: String) -> String? {
        let fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return "cannot open '\(path)': \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFCHR else { return "'\(path)' is no longer a character device" }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { systemWrite(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return "cannot write '\(path)': \(String(cString: strerror(errno)))" }
            offset += n
        }
        return nil
    }

    /// What a non-regular file is, for messages.
    static func describe(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        default: "not a file"
        }
    }

    /// Whether `info` is the file behind stdout.
    static func isStdout(_ info: stat) -> Bool {
        var out = stat()
        guard fstat(1, &out) == 0 else { return false }
        return out.st_dev == info.st_dev && out.st_ino == info.st_ino
    }
}
