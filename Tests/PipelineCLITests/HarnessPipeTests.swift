import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The harness's own pipes (`ClosedOnExecPipe`, used by every `runPipeline`): no process started
/// while one is open inherits an end. With `Pipe()`, a peer server started while a run's stdin
/// was open kept its write end, and the run, waiting for its input to end, hung (found in CI).
struct HarnessPipeTests {
    @Test func bothEndsAreClosedOnExec() throws {
        let pipe = try ClosedOnExecPipe()
        for fd in [pipe.reading.fileDescriptor, pipe.writing.fileDescriptor] {
            #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0, "descriptor \(fd) would be inherited")
        }
    }

    /// A process started while the pipe is open does not hold its write end: closing ours ends
    /// the reader's input while that process still runs.
    @Test func aProcessStartedMeanwhileDoesNotKeepThePipeOpen() throws {
        let pipe = try ClosedOnExecPipe()
        let bystander = Process()
        bystander.executableURL = URL(fileURLWithPath: "/bin/sleep")
        bystander.arguments = ["120"]
        try bystander.run()
        defer {
            // SIGKILL: a child inherits the spawning thread's signal mask, where SIGTERM may be blocked.
            kill(bystander.processIdentifier, SIGKILL)
            bystander.waitUntilExit()
        }
        try pipe.writing.write(contentsOf: Data("end".utf8))
        try pipe.writing.close()
        // With an inherited write end, this read would wait for the bystander's exit (120 s).
        #expect(pipe.reading.readDataToEndOfFile() == Data("end".utf8))
        #expect(bystander.isRunning, "the input ended only when the bystander did: it held the write end")
    }
}
