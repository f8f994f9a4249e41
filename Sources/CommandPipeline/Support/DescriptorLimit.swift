#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's open-file limit (`RLIMIT_NOFILE`) and how many descriptors connection pools
/// may take from it.
///
/// Running out of descriptors must never crash a run: libdispatch opens files of its own (on
/// Linux it reads `/proc/self/task/…` to size its thread pool) and traps when such an open
/// fails, and the runtime writes its crash report on stdout. So the pools never take the whole
/// limit: `reserve` descriptors stay free for everything else (stdio, pipes, sinks, files of
/// commands, the runtime), and a request that finds no descriptor waits for a connection to
/// close, or fails with a precise, retryable error (`Design/security.md`, "Descriptors").
package enum DescriptorLimit {
    /// The soft limit now (1024 when it cannot be read; `Int.max` clamps to `1 << 20`).
    public static var current: Int {
        var limit = rlimit()
        guard getrlimit(resourceNoFile, &limit) == 0 else { return 1024 }
        return Int(clamping: min(limit.rlim_cur, rlim_t(1 << 20)))
    }

    /// Raises the soft limit to the hard one (what a process may do on its own), so a run with
    /// many connections is not held to a shell's default of 1024. Returns the soft limit after.
    @discardableResult
    public static func raiseSoftLimitToHard() -> Int {
        var limit = rlimit()
        guard getrlimit(resourceNoFile, &limit) == 0 else { return current }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            #if canImport(Darwin)
            // Darwin refuses more than OPEN_MAX for the soft limit, even with a higher hard one.
            raised.rlim_cur = min(limit.rlim_max, rlim_t(OPEN_MAX))
            #endif
            _ = setrlimit(resourceNoFile, &raised)
        }
        return current
    }

    /// Descriptors kept free of connection pools out of `limit`: 64, plus an eighth of the limit.
    public static func reserve(of limit: Int) -> Int {
        64 &+ max(0, limit) / 8
    }

    /// Connections one pool (one path of one HTTP client) may open under `limit`: half of what
    /// the reserve leaves (an HTTP client has two paths: its own HTTP/1.1 and `URLSession`),
    /// at least 1.
    public static func connectionsPerPool(limit: Int = DescriptorLimit.current) -> Int {
        max(1, (max(0, limit) - reserve(of: limit)) / 2)
    }

    #if canImport(Glibc)
    private static let resourceNoFile = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resourceNoFile = RLIMIT_NOFILE
    #endif
}
