#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The one rule for every path a flag names (`Design/security.md`, "Path arguments"):
///
/// - the final target (symbolic links followed) is a **regular file**, or — for a file the run
///   writes — does not exist yet. A directory, device, FIFO or socket is refused at start with
///   a usage error (exit 2): nothing is opened first, so no open can block (a FIFO without a
///   writer) or have an effect of its own (a device);
/// - a file written whole (`--stats-json`) is written by rename next to its final target, so a
///   symbolic link stays a link and its target is replaced, never the link or a device;
/// - a file the run writes must not be stdout's file: results would be interleaved with, or
///   replaced by, what the run writes there.
///
/// `--resume` keeps its own reader (non-blocking open, `fstat`), which follows the same rule and
/// also takes `/dev/null` for "no earlier results".
enum PathArgument {
    enum Use {
        /// Read at start (`--models`).
        case read
        /// Opened for appending or as a database (`--sink jsonl:`, `--sink sqlite:`).
        case write
        /// Written whole at the end, by rename (`--stats-json`).
        case replace
    }

    /// Checks `path` for `use`; returns the path to open (for `.replace`, the final target of a
    /// symbolic link). `option` names the flag in the message, e.g. "--stats-json".
    static func check(_ path: String, option: String, use: Use) throws(UsageError) -> String {
        var linkInfo = stat()
        guard lstat(path, &linkInfo) == 0 else {
            let reason = errno
            if reason == ENOENT && use != .read {
                // Created by the run. Its directory must exist (said now, not after the run).
                let directory = (path as NSString).deletingLastPathComponent
                var directoryInfo = stat()
                if stat(directory.isEmpty ? "." : directory, &directoryInfo) != 0 || (directoryInfo.st_mode & S_IFMT) != S_IFDIR {
                    throw UsageError(message: "option '\(option) \(path)': the directory '\(directory)' does not exist")
                }
                return path
            }
            throw UsageError(message: "option '\(option) \(path)': \(String(cString: strerror(reason)))")
        }
        var info = linkInfo
        let isLink = (linkInfo.st_mode & S_IFMT) == S_IFLNK
        if isLink {
            guard stat(path, &info) == 0 else {
                throw UsageError(message: "option '\(option) \(path)': a symbolic link to nothing (\(String(cString: strerror(errno))))")
            }
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw UsageError(
                message: "option '\(option) \(path)': \(describe(info.st_mode)), not a regular file; give the path of a regular file\(use == .read ? "" : " (or of one to create)")")
        }
        if use != .read, isStdout(info) {
            throw UsageError(message: "option '\(option) \(path)': this is the file stdout writes to; results and \(option) would overwrite each other: give another file")
        }
        guard use == .replace, isLink else { return path }
        guard let resolved = realpath(path, nil) else {
            throw UsageError(message: "option '\(option) \(path)': cannot resolve the link (\(String(cString: strerror(errno))))")
        }
        defer { free(resolved) }
        return String(cString: resolved)
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
