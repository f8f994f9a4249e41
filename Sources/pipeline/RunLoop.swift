import CommandPipeline
import Dispatch
import Foundation
import Synchronization

/// The streaming run: stdin → commands → engine → one result line each on stdout.
/// Commands run concurrently (at most `concurrency`); results are written in input order
/// through a bounded reorder window, or as they complete with `--unordered`.
final class RunLoop: Sendable {
    enum Mode {
        case execute(PipelineEngine)
        /// Decode and validate only, and check each command against the model catalog
        /// (modalities, context window) as `run` would before any work.
        case validate(ModelCatalog)
    }

    struct Outcome: Sendable {
        enum Status: Sendable { case succeeded, failed, skipped }
        var line: [UInt8]
        var status: Status
        var tokens: Int
        var usedFallback: Bool
        /// In events mode with sinks: the plain-mode result record sinks receive (the terminal
        /// event's `result`, a view of that event line's bytes); in plain mode sinks receive `line` itself.
        var sinkRecord: ArraySlice<UInt8>? = nil
        /// A failed command's error kind, for the progress line.
        var failureKind: String? = nil
        /// The command's id and input position, for sinks (never read back from the line).
        var commandID = ""
        var index = 0
    }

    enum Event: Sendable {
        /// Pieces read, with the index of the first; empty at the end of input.
        case input([JSONStreamSplitter.Piece], Int)
        /// A result, with the index and the credits (`InputReader.weight`) of its piece.
        case done(Int, Int, Outcome)
        case interrupt
        case cancelNow
        case readFailed(String)
        /// Output failed: the reader of stdout went away (seen by the watcher before any write
        /// failed), or a command's event line could not be written.
        case outputClosed
        /// A slot was given back or lent (`Admission`): a queued command may start.
        case slotFreed
    }

    /// How a run ended.
    struct Ending: Sendable {
        var interrupted = false
        var readError: String?
        /// Results could not be written (exit status 3).
        var outputError: String?
        var linesWritten = 0
    }

    let mode: Mode
    let providerName: String
    let concurrency: Int
    let unordered: Bool
    /// Write each command's events (`--events`) instead of one result line.
    let eventsMode: Bool
    /// Successes of an earlier run (`--resume`), or nil.
    let resume: ResumeLedger?
    /// Write a newline before the first record (stdout is the resume file and ends mid-line).
    let startOnNewLine: Bool
    let stats: Stats
    /// Ordered output: bytes of finished results that may wait for an earlier command while
    /// their input credits are already back (`--reorder-buffer-mb`).
    let reorderBufferBytes: Int
    /// Result sinks (`--sink`): each result line written is also handed to them (never waited for).
    let sinks: SinkFeed?

    // A class: every command's task holds the loop, and a struct of these fields was copied
    // (a retain each) into every one of them.
    init(
        mode: Mode, providerName: String, concurrency: Int, unordered: Bool, eventsMode: Bool = false, resume: ResumeLedger?,
        startOnNewLine: Bool = false, stats: Stats, sinks: SinkFeed? = nil, reorderBufferBytes: Int = RunOptions.defaultReorderBufferMB << 20
    ) {
        self.reorderBufferBytes = reorderBufferBytes
        self.mode = mode
        self.providerName = providerName
        self.concurrency = concurrency
        self.unordered = unordered
        self.eventsMode = eventsMode
        self.resume = resume
        self.startOnNewLine = startOnNewLine
        self.stats = stats
        self.sinks = sinks
    }

    /// Runs until the input ends, an interrupt, or a failed write: sets up the pieces, then one
    /// loop — take the batch of events posted since the last look, let `LoopState` decide on each —
    /// until the run is over (`Design/architecture.md`, "The CLI's run loop").
    func run(interrupts: AsyncStream<Void>) async -> Ending {
        let writer = LineWriter(fd: 1)
        if startOnNewLine && !writer.writeSeparator([0x0a]) {
            return Ending(outputError: writer.failureText, linesWritten: 0)
        }
        let inbox = Mailbox<Event>()
        Self.watchOutput(fd: 1) { inbox.post(.outputClosed) }
        // Events are written as they happen: no reordering, so credits come back at once.
        let unordered = self.unordered || eventsMode
        let window = unordered ? max(concurrency * 2, 1024) : max(concurrency * 4, 4096)
        let reader = InputReader(fd: 0, window: window, stats: stats)
        reader.start(
            deliver: { pieces, first in inbox.post(.input(pieces, first)) },
            readFailed: { inbox.post(.readFailed($0)) })
        let forward = Task {
            for await _ in interrupts { inbox.post(.interrupt) }
        }
        defer { forward.cancel() }

        var state = LoopState(run: self, writer: writer, reader: reader, inbox: inbox, unordered: unordered)
        await withDiscardingTaskGroup { group in
            loop: while true {
                for event in await inbox.receive() {
                    state.handle(event, in: &group)
                    if state.isOver { break loop }
                }
            }
            group.cancelAll()
        }
        return state.end()
    }

    /// What the loop decides with, and its one decision per event. Only the loop holds it:
    /// command tasks, the reader thread and the watchers reach it through the inbox.
    private struct LoopState {
        let run: RunLoop
        let writer: LineWriter
        let reader: InputReader
        let inbox: Mailbox<Event>
        let unordered: Bool
        /// Commands read, not started, and the `--concurrency` slots they run in; a command
        /// waiting out a retry's backoff, or another command's upload or cache, lends its slot
        /// (`Admission`, `SlotTicket`).
        let admission: Admission
        /// With `--events`: event lines go straight to the (thread-safe) writer from each
        /// command's task; the loop only hears of a failed write.
        let emit: (@Sendable ([UInt8]) -> Void)?
        /// Finished, not yet written (ordered mode).
        var reorder: ReorderBuffer<Outcome>
        var finished = 0
        var inputEnded = false
        var interrupted = false
        var readError: String?
        var outputFailed = false

        init(run: RunLoop, writer: LineWriter, reader: InputReader, inbox: Mailbox<Event>, unordered: Bool) {
            self.run = run
            self.writer = writer
            self.reader = reader
            self.inbox = inbox
            self.unordered = unordered
            admission = Admission(slots: run.concurrency) { inbox.post(.slotFreed) }
            emit = run.eventsMode ? { @Sendable line in if !writer.write(line) { inbox.post(.outputClosed) } } : nil
            reorder = ReorderBuffer(limit: run.reorderBufferBytes)
        }

        /// Every started command has finished, and the input has ended or the run was stopped.
        var isOver: Bool {
            let (taken, empty) = admission.progress
            return taken == finished && (interrupted || outputFailed || (inputEnded && empty))
        }

        mutating func handle(_ event: Event, in group: inout DiscardingTaskGroup) {
            let stats = run.stats
            switch event {
            case .input(let pieces, let first):
                stats.commandsRead.add(pieces.count, ordering: .relaxed)
                if pieces.isEmpty {
                    inputEnded = true
                    stats.inputEnded.store(true, ordering: .relaxed)
                } else if interrupted || outputFailed {
                    reader.gate.release(pieces.reduce(0) { $0 + InputReader.weight(of: $1) })
                } else {
                    let resume = run.resume
                    admission.append(pieces.enumerated().map { offset, piece in
                        let index = first + offset
                        return Admission.Item(piece: piece, index: index, skip: resume.map { RunLoop.claim(piece, index: index, in: $0) } ?? false)
                    })
                    startQueued(in: &group)
                }
            case .done(let index, let weight, let outcome):
                finished += 1
                if outputFailed { break }
                run.count(outcome)
                if unordered {
                    run.write(outcome, to: writer)
                    reader.gate.release(weight)
                } else {
                    let (run, writer) = (run, writer)
                    let released = reorder.add(outcome, index: index, size: outcome.line.count, credits: weight) { run.write($0, to: writer) }
                    if released > 0 { reader.gate.release(released) }
                }
                if writer.failure != nil { stopForOutput(in: &group) }
                startQueued(in: &group)
            case .outputClosed:
                if writer.failure == nil { writer.markFailed(EPIPE) }
                stopForOutput(in: &group)
            case .readFailed(let message):
                readError = message
                inputEnded = true
            case .interrupt:
                if interrupted {
                    group.cancelAll()
                    return
                }
                interrupted = true
                admission.stop()
                reader.stop()
                if admission.progress.taken > finished {
                    let inbox = inbox
                    group.addTask {
                        try? await Task.sleep(for: .seconds(1))
                        inbox.post(.cancelNow)
                    }
                }
            case .cancelNow:
                group.cancelAll()
            case .slotFreed:
                startQueued(in: &group)
            }
        }

        /// Starts queued commands while slots allow, each in a task of its own (`work`); none
        /// after an interrupt or a failed output (the admission is stopped then).
        private mutating func startQueued(in group: inout DiscardingTaskGroup) {
            while let item = admission.start() {
                let (run, admission, inbox, emit) = (run, admission, inbox, emit)
                group.addTask { await run.work(item, admission: admission, inbox: inbox, emit: emit) }
            }
            run.stats.inFlight.store(admission.progress.taken - finished, ordering: .relaxed)
        }

        /// Output failed: stop taking commands and cancel what runs; nothing more is written.
        private mutating func stopForOutput(in group: inout DiscardingTaskGroup) {
            guard !outputFailed else { return }
            outputFailed = true
            admission.stop()
            reader.stop()
            group.cancelAll()
        }

        /// After the loop: unless output failed, what still waits (after an interrupt, results
        /// behind a command that never started) is written in order, and everything flushed.
        mutating func end() -> Ending {
            if !outputFailed {
                for outcome in reorder.drain() { run.write(outcome, to: writer) }
                writer.flush()
            }
            return Ending(interrupted: interrupted, readError: readError, outputError: writer.failureText, linesWritten: writer.linesWritten)
        }
    }

    /// A command task: runs `first`, then — while it may keep its slot — the next queued
    /// commands, posting each result to the loop.
    private func work(
        _ first: Admission.Item, admission: Admission, inbox: Mailbox<Event>, emit: (@Sendable ([UInt8]) -> Void)?
    ) async {
        var item = first
        while true {
            let ticket = SlotTicket(admission: admission)
            let weight = InputReader.weight(of: item.piece)
            let outcome = await BackoffScope.$lender.withValue(CountingLender(ticket: ticket, stats: stats)) {
                await self.process(item.piece, index: item.index, resumed: item.skip, emit: emit, ticket: ticket)
            }
            inbox.post(.done(item.index, weight, outcome))
            guard let next = ticket.finish(goOn: !Task.isCancelled) else { return }
            item = next
        }
    }

    /// Under `--resume`: whether this piece's command is skipped. Decided here, in input order,
    /// because the ledger's rule depends on the order (see `ResumeLedger`). The id is the one
    /// the command decoder will use: the `id` string, or `cmd-N`.
    private static func claim(_ piece: JSONStreamSplitter.Piece, index: Int, in ledger: ResumeLedger) -> Bool {
        guard !ledger.isEmpty, case .success(.object(let object)) = piece.parse() else { return false }
        switch object["id"] {
        case nil, .null?: return ledger.claim(id: "cmd-\(index + 1)", hash: ResumeLedger.digest(piece.bytes))
        case .string(let id)?: return ledger.claim(id: id, hash: ResumeLedger.digest(piece.bytes))
        default: return false
        }
    }

    /// When stdout is a pipe, a thread waits for its reader to go away (poll reports POLLERR on
    /// the write end), so a run whose consumer quit (`pipeline | head -1`) stops at once rather
    /// than at its next write. The thread blocks in poll until then or until the process exits.
    private static func watchOutput(fd: Int32, closed: @escaping @Sendable () -> Void) {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFIFO else { return }
        let thread = Thread {
            var poller = pollfd(fd: fd, events: 0, revents: 0)
            while true {
                let n = poll(&poller, 1, -1)
                if n < 0 && errno == EINTR { continue }
                if n > 0 && (Int32(poller.revents) & (POLLERR | POLLHUP | POLLNVAL)) != 0 { closed() }
                return
            }
        }
        thread.stackSize = 1 << 16
        thread.start()
    }

    private func count(_ outcome: Outcome) {
        switch outcome.status {
        case .succeeded: stats.succeeded.add(1, ordering: .relaxed)
        case .failed:
            stats.failed.add(1, ordering: .relaxed)
            let kind = outcome.failureKind ?? "internal"
            stats.failureKinds.withLock { $0[kind, default: 0] += 1 }
        case .skipped: stats.skipped.add(1, ordering: .relaxed)
        }
        if outcome.usedFallback { stats.fallbacks.add(1, ordering: .relaxed) }
        // One writer (this loop): a saturating load-and-store, so absurd usage cannot wrap the total.
        stats.tokens.store(stats.tokens.load(ordering: .relaxed).addingSaturating(outcome.tokens), ordering: .relaxed)
    }

    private func write(_ outcome: Outcome, to writer: LineWriter) {
        if !outcome.line.isEmpty { writer.write(outcome.line) }
        guard let sinks, outcome.status != .skipped, writer.failure == nil else { return }
        // In events mode the lines are events: sinks get the plain result record instead.
        if let record = eventsMode ? outcome.sinkRecord : outcome.line[...] {
            sinks.submit(record, id: outcome.commandID, index: outcome.index, succeeded: outcome.status == .succeeded)
        }
    }

    /// Parses, validates and (in execute mode) runs one command; returns its result line.
    /// With `emit` (`--events`), the command's event lines go to `emit` as they happen and the
    /// returned outcome has no line.
    func process(
        _ piece: JSONStreamSplitter.Piece, index: Int, resumed: Bool = false, emit: (@Sendable ([UInt8]) -> Void)? = nil, ticket: SlotTicket? = nil
    ) async -> Outcome {
        let validated: ValidatedCommand
        switch piece.parse() {
        case .failure(let error):
            let apiError = APIError(.invalidCommand, error.message, path: error.path)
            return failed(apiError, id: "cmd-\(index + 1)", index: index, metadata: [:], piece: piece, emit: emit)
        case .success(let value):
            // Validated here, once: the engine runs the `ValidatedCommand` without checking it again.
            switch WireFormat.validatedCommand(from: value, position: index + 1) {
            case .failure(let rejection):
                return failed(rejection.error, id: rejection.id, index: index, metadata: rejection.metadata, piece: piece, emit: emit)
            case .success(let decoded):
                validated = decoded
            }
        }
        let command = validated.command
        if resumed {
            return Outcome(line: [], status: .skipped, tokens: 0, usedFallback: false)
        }
        ticket?.allowLending(for: command)
        switch mode {
        case .validate(let catalog):
            if let problem = Preflight.check(command, catalog: catalog) {
                return failed(problem, id: command.id, index: index, metadata: command.metadata, piece: piece, emit: nil)
            }
            let record: JSONValue = ["id": .string(command.id), "index": .int(index), "status": "valid", "metadata": .object(command.metadata)]
            return Outcome(line: Self.line(record), status: .succeeded, tokens: 0, usedFallback: false, commandID: command.id, index: index)
        case .execute(let engine):
            let outcome: CommandOutcome
            var line: [UInt8] = []
            // With sinks, the terminal event's `result` is what they receive: a view of the
            // event line's own bytes, so a large answer is held once (issue 21 class 8).
            let terminalRecord = RecordSlot()
            let wantsRecord = sinks != nil
            if let emit {
                outcome = await engine.run(validated, index: index, streaming: true) { event in
                    var bytes: [UInt8] = []
                    var range: Range<Int>?
                    EventWriter.write(event, to: &bytes) { outcome, out in
                        let start = out.count
                        ResultWriter.record(outcome, index: index, inputHash: ResumeLedger.digestValue(of: piece.bytes), to: &out)
                        range = start..<out.count
                    }
                    bytes.append(0x0a)
                    if wantsRecord, let range { terminalRecord.record.withLock { $0 = bytes[range] } }
                    emit(bytes)
                }
            } else {
                outcome = await engine.run(validated, index: index)
                line.reserveCapacity(1024)   // a one-call mock result is some 700 bytes
                ResultWriter.record(outcome, index: index, inputHash: ResumeLedger.digestValue(of: piece.bytes), to: &line)
                line.append(0x0a)
            }
            for failure in outcome.telemetry.hookFailures {
                StandardError.write("pipeline: hook '\(StandardError.oneLine(failure.hook))' failed after command '\(StandardError.oneLine(command.id))' (\(failure.phase.rawValue)): \(StandardError.oneLine(failure.message))\n")
            }
            let sinkRecord = terminalRecord.record.withLock { record in
                defer { record = nil }
                return record
            }
            var failureKind: String?
            if case .failure(let error) = outcome.result { failureKind = error.kind.rawValue }
            return Outcome(
                line: line, status: outcome.succeeded ? .succeeded : .failed, tokens: outcome.usage.totalTokens,
                usedFallback: outcome.succeeded && outcome.telemetry.usedFallback, sinkRecord: sinkRecord, failureKind: failureKind,
                commandID: command.id, index: index)
        }
    }

    /// The record of a command rejected before it could run. With `emit`, its two events
    /// (`command_started`, `command_failed`) as lines instead.
    private func failed(
        _ error: APIError, id: String, index: Int, metadata: JSONObject, piece: JSONStreamSplitter.Piece, emit: (@Sendable ([UInt8]) -> Void)?
    ) -> Outcome {
        var record: [UInt8] = []
        // `run` records carry the input's digest (`--resume` matches on it); `--validate` ones do not.
        var inputHash: UInt64?
        if case .execute = mode { inputHash = ResumeLedger.digestValue(of: piece.bytes) }
        ResultWriter.failed(
            error, id: id, index: index, metadata: metadata, telemetry: Telemetry(provider: providerName), inputHash: inputHash, to: &record)
        guard emit != nil else {
            record.append(0x0a)
            return Outcome(line: record, status: .failed, tokens: 0, usedFallback: false, failureKind: error.kind.rawValue, commandID: id, index: index)
        }
        var lines: [UInt8] = []
        EventWriter.rejected(id: id, index: index, record: record, to: &lines)
        return Outcome(line: lines, status: .failed, tokens: 0, usedFallback: false, sinkRecord: record[...], failureKind: error.kind.rawValue, commandID: id, index: index)
    }

    static func line(_ record: JSONValue) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(768)
        JSONSerializer.write(record, to: &bytes)
        bytes.append(0x0a)
        return bytes
    }
}

/// The command's slot ticket as its backoff lender, counting the commands waiting out a retry
/// for the progress line. A struct of two references: no allocation per command.
struct CountingLender: BackoffLender {
    let ticket: SlotTicket
    let stats: Stats

    func backoffStarted() {
        stats.waitingOnRetry.add(1, ordering: .relaxed)
        ticket.backoffStarted()
    }

    func backoffEnded() async {
        await ticket.backoffEnded()
        stats.waitingOnRetry.subtract(1, ordering: .relaxed)
    }

    func rateLimitWaitStarted() { stats.waitingOnRateLimit.add(1, ordering: .relaxed) }
    func rateLimitWaitEnded() { stats.waitingOnRateLimit.subtract(1, ordering: .relaxed) }
    func deploymentWaitStarted() { stats.waitingOnDeployment.add(1, ordering: .relaxed) }
    func deploymentWaitEnded() { stats.waitingOnDeployment.subtract(1, ordering: .relaxed) }
}

/// Where the event observer (which runs on the engine's side) leaves a terminal event's record
/// for the command's sinks.
private final class RecordSlot: Sendable {
    let record = Mutex<ArraySlice<UInt8>?>(nil)
}
