import CommandPipeline
import Foundation
import PipelineTestSupport
import Synchronization
import Testing

@testable import pipeline

/// What the proof that the progress line costs < 1% of the 1M-command run relies on
/// (ADR 0011, "What the line costs"): the live task renders only when its clock wakes it, at
/// most once per interval however many commands finish, and nothing is drawn per command.
// The pseudo-terminal calls of <stdlib.h> that Glibc's module leaves out (they need _XOPEN_SOURCE).
@_silgen_name("grantpt") private func grantpt(_ fd: Int32) -> Int32
@_silgen_name("unlockpt") private func unlockpt(_ fd: Int32) -> Int32
@_silgen_name("ptsname") private func ptsname(_ fd: Int32) -> UnsafeMutablePointer<CChar>?

@Suite struct ProgressCostTests {
    /// A clock that moves only when told to (as `CommandPipelineTesting.ManualClock`, which this
    /// test target does not link).
    final class StepClock: PipelineClock {
        private struct Sleeper {
            let id: Int
            let deadline: Duration
            let continuation: CheckedContinuation<Void, any Error>
        }

        private struct State {
            var now: Duration = .zero
            var nextID = 0
            var sleepers: [Sleeper] = []
            var cancelled: Set<Int> = []
        }

        private let state = Mutex(State())
        var now: Duration { state.withLock { $0.now } }
        var sleeperCount: Int { state.withLock { $0.sleepers.count } }

        func sleep(until deadline: Duration) async throws {
            let id = state.withLock { s -> Int in
                s.nextID += 1
                return s.nextID
            }
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let outcome: Result<Void, any Error>? = state.withLock { s in
                        if s.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                        if deadline <= s.now { return .success(()) }
                        s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                        return nil
                    }
                    if let outcome { continuation.resume(with: outcome) }
                }
            } onCancel: {
                let sleeper: Sleeper? = state.withLock { s in
                    if let index = s.sleepers.firstIndex(where: { $0.id == id }) { return s.sleepers.remove(at: index) }
                    s.cancelled.insert(id)
                    return nil
                }
                sleeper?.continuation.resume(throwing: CancellationError())
            }
        }

        func advance(by duration: Duration) {
            let woken: [Sleeper] = state.withLock { s in
                s.now += duration
                let now = s.now
                let due = s.sleepers.filter { $0.deadline <= now }
                s.sleepers.removeAll { $0.deadline <= now }
                return due
            }
            for sleeper in woken { sleeper.continuation.resume() }
        }

        /// Yields (never sleeps) until a task sleeps on the clock; false after a bounded number of yields.
        func waitForSleeper(maxYields: Int = 5_000_000) async -> Bool {
            var yields = 0
            while sleeperCount < 1 {
                if yields >= maxYields { return false }
                yields += 1
                await Task.yield()
            }
            return true
        }
    }

    final class Writes: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ text: String) { lines.withLock { $0.append(text) } }
        var count: Int { lines.withLock { $0.count } }
    }

    @Test func onATerminalTheLineIsDrawnOncePerIntervalHoweverManyCommandsFinish() async throws {
        let stats = Stats()
        stats.inputEnded.store(true, ordering: .relaxed)
        stats.commandsRead.store(1_000_000, ordering: .relaxed)
        let clock = StepClock(), writes = Writes()
        let live = pipeline.Progress(stats: stats).live(terminal: true, interval: 30, clock: clock, width: { 120 }, write: { writes.append($0) })
        let task = try #require(live)
        #expect(await clock.waitForSleeper())
        // Commands finish (the run loop's bookkeeping: an atomic add each): nothing is drawn.
        for _ in 0..<100_000 { stats.succeeded.add(1, ordering: .relaxed) }
        #expect(writes.count == 0, "no frame before the first quarter second, none per command")
        #expect(clock.now == .zero && clock.sleeperCount == 1)
        // A quarter second: one frame, with the figures of that moment.
        clock.advance(by: .milliseconds(249))
        #expect(clock.sleeperCount == 1, "not due before 250 ms")
        clock.advance(by: .milliseconds(1))
        #expect(await clock.waitForSleeper())
        #expect(writes.count == 1)
        #expect(writes.lines.withLock { $0[0] }.hasPrefix("\r\u{1B}[K[") && writes.lines.withLock { $0[0] }.contains("100,000/1,000,000 10%"))
        // Many more commands and ten seconds in one step (a loaded machine wakes the task late):
        // still one frame, then the next a quarter second after it.
        for _ in 0..<400_000 { stats.succeeded.add(1, ordering: .relaxed) }
        clock.advance(by: .seconds(10))
        #expect(await clock.waitForSleeper())
        #expect(writes.count == 2)
        #expect(writes.lines.withLock { $0[1] }.contains("500,000/1,000,000 50%"))
        for step in 1...4 {
            clock.advance(by: .milliseconds(250))
            #expect(await clock.waitForSleeper())
            #expect(writes.count == 2 + step)
        }
        // The end: one frame with the final figures, then the erase.
        stats.succeeded.store(1_000_000, ordering: .relaxed)
        task.cancel()
        await task.value
        let lines = writes.lines.withLock { $0 }
        #expect(lines.count == 8)
        #expect(lines[6].contains("1,000,000/1,000,000 100%") && lines[7] == "\r\u{1B}[K")
    }

    @Test func offATerminalAPlainLineEveryIntervalAndNoneWhenItIsZero() async throws {
        let stats = Stats()
        let clock = StepClock(), writes = Writes()
        let none = pipeline.Progress(stats: stats).live(terminal: false, interval: 0, clock: clock, width: { 120 }, write: { writes.append($0) })
        #expect(none == nil)
        let live = pipeline.Progress(stats: stats).live(terminal: false, interval: 30, clock: clock, width: { 120 }, write: { writes.append($0) })
        let task = try #require(live)
        #expect(await clock.waitForSleeper())
        for _ in 0..<10_000 { stats.failed.add(1, ordering: .relaxed) }
        clock.advance(by: .seconds(29))
        #expect(clock.sleeperCount == 1 && writes.count == 0)
        clock.advance(by: .seconds(1))
        #expect(await clock.waitForSleeper())
        let line = writes.lines.withLock { $0[0] }
        #expect(line.hasPrefix("pipeline: progress 10,000 done") && line.contains("10,000 failed") && !line.contains("\u{1B}") && line.hasSuffix("\n"))
        task.cancel()
        await task.value
        #expect(writes.count == 1, "no last line off a terminal")
    }

    /// The cost of one redraw of the terminal line, at 120 columns, a 1M run half way (a total,
    /// failures of three kinds, waits, cost and a limit),
    /// written to a pseudo-terminal: the live task's own loop on a clock that never waits.
    /// A measurement, not a test (no figure is asserted): run it with
    /// `PIPELINE_MEASURE_REDRAW=20000 swift test --skip-build --filter ProgressCostTests`.
    /// It prints CPU microseconds per redraw (user + sys of the process, in a debug build: an
    /// upper bound of the release build's).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PIPELINE_MEASURE_REDRAW"] != nil))
    func measureTheCostOfOneRedraw() async throws {
        let redraws = max(100, Int(ProcessInfo.processInfo.environment["PIPELINE_MEASURE_REDRAW"] ?? "") ?? 20_000)
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        try #require(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0)
        defer { close(master) }
        let slave = open(String(cString: try #require(ptsname(master))), O_RDWR | O_NOCTTY)
        try #require(slave >= 0)
        var size = winsize(ws_row: 40, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0)
        try #require(ioctl(slave, UInt(TIOCSWINSZ), &size) == 0)
        // The terminal's side: read everything, as a terminal does.
        let drained = Atomic<Int>(0)
        let reader = Thread { [master] in
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = read(master, &buffer, buffer.count)
                if n <= 0 { break }
                drained.add(n, ordering: .relaxed)
            }
        }
        reader.start()
        // A 1M run half way: a total, failures of three kinds, waits, cost and a limit.
        let stats = Stats()
        stats.commandsRead.store(1_000_000, ordering: .relaxed)
        stats.inputEnded.store(true, ordering: .relaxed)
        stats.succeeded.store(480_000, ordering: .relaxed)
        stats.failed.store(20_000, ordering: .relaxed)
        stats.failureKinds.withLock { $0 = ["timeout": 10_000, "rate_limited": 6_000, "provider_error": 4_000] }
        stats.inFlight.store(256, ordering: .relaxed)
        stats.waitingOnRetry.store(12, ordering: .relaxed)
        stats.tokens.store(123_456_789, ordering: .relaxed)
        var progress = pipeline.Progress(stats: stats)
        let ledger = CostLedger(limit: 500)
        ledger.settle(reserved: 0, cost: Cost(outputUSD: 123.45))
        progress.ledger = ledger
        let written = Atomic<Int>(0)
        // Resumed by the redraw that reaches the count: the measuring task waits without spinning.
        let finished = Mutex<(done: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
        let fd = slave
        func cpu() -> Double {
            var now = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
            return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        }
        struct Immediate: PipelineClock {
            var now: Duration { .zero }
            func sleep(until deadline: Duration) async throws { try Task.checkCancellation() }
        }
        let before = cpu()
        let live = progress.live(terminal: true, interval: 30, clock: Immediate(), width: { pipeline.Progress.terminalWidth(fd: fd) }, write: { text in
            var text = text
            _ = text.withUTF8 { write(fd, $0.baseAddress, $0.count) }
            if written.add(1, ordering: .relaxed).newValue == redraws {
                finished.withLock { s in
                    s.done = true
                    return s.waiter.take()
                }?.resume()
            }
        })
        let task = try #require(live)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = finished.withLock { s in
                if s.done { return true }
                s.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
        task.cancel()
        await task.value
        let after = cpu()
        let frames = written.load(ordering: .relaxed)
        let columns = pipeline.Progress.terminalWidth(fd: fd)
        close(slave)
        let sample = pipeline.Progress.terminalLine(progress.figures(), width: 120)
        print("progress redraw: \(frames) redraws at \(columns) columns, CPU \(String(format: "%.3f", after - before)) s, "
            + "\(String(format: "%.1f", (after - before) / Double(max(1, frames)) * 1e6)) µs per redraw (this process, user + sys); line: \(sample)")
        #expect(frames >= redraws)
    }
}
