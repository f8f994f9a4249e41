#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// The write end of the self-pipe, read by the signal handler (async-signal-safe: a plain int).
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1

/// SIGINT, SIGTERM and SIGHUP (a closed terminal or session), delivered reliably.
///
/// `install()` sets a process-wide handler with `sigaction`, so the signal is caught on
/// whichever thread the kernel picks; the handler only writes one byte to a pipe (the
/// self-pipe trick), and a dedicated thread turns bytes into events. (A `DispatchSourceSignal`
/// on Linux uses `signalfd`, which misses signals that land on threads where they are not
/// blocked — the runtime's threads exist before `main` can block anything — so Ctrl-C was
/// sometimes lost.) While a run loop listens, a signal becomes an event of its stream;
/// otherwise the process exits with 130 at once. SIGPIPE and SIGXFSZ are ignored: a closed
/// stdout or a file-size limit shows up as a write error instead (exit status 3).
enum Signals {
    private static let listener = Mutex<AsyncStream<Void>.Continuation?>(nil)

    static func install() {
        signal(SIGPIPE, SIG_IGN)
        // Likewise a file-size limit (ulimit -f) shows up as EFBIG on write, not as a kill.
        signal(SIGXFSZ, SIG_IGN)
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { return }
        signalPipeWriteEnd = ends[1]
        let readEnd = ends[0]
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { number in
            var byte = UInt8(truncatingIfNeeded: number)
            _ = write(signalPipeWriteEnd, &byte, 1)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        sigaction(SIGHUP, &action, nil)
        let thread = Thread {
            var byte: UInt8 = 0
            while true {
                let n = read(readEnd, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                guard n == 1 else { return }
                let delivered = listener.withLock { $0?.yield() } != nil
                if !delivered { exit(130) }
            }
        }
        thread.stackSize = 1 << 16
        thread.start()
    }

    /// Signals from now on, as a stream; replaces the "exit at once" default while it lives.
    static func interrupts() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        listener.withLock { $0 = continuation }
        continuation.onTermination = { _ in listener.withLock { $0 = nil } }
        return stream
    }
}
