import CommandPipeline
import Dispatch
import Foundation

/// The streaming run: stdin → commands → engine → one result line each on stdout.
/// Commands run concurrently (at most `concurrency`); results are written in input order
/// through a bounded reorder window, or as they complete with `--unordered`.
struct RunLoop {
    enum Mode {
        case execute(PipelineEngine)
        case validate
    }

    struct Outcome: Sendable {
        enum Status: Sendable { case succeeded, failed, skipped }
        var line: [UInt8]
        var status: Status
        var tokens: Int
        var usedFallback: Bool
    }

    enum Event: Sendable {
        /// Pieces read, with the index of the first; empty at the end of input.
        case input([JSONStreamSplitter.Piece], Int)
        case done(Int, Outcome)
        case interrupt
        case cancelNow
        case readFailed(String)
    }

    let mode: Mode
    let providerName: String
    let concurrency: Int
    let unordered: Bool
    let resumeIDs: Set<String>
    let stats: Stats

    /// Runs until the input ends (or an interrupt); returns whether the run was interrupted.
    func run(interrupts: AsyncStream<Void>) async -> (interrupted: Bool, readError: String?) {
        let (events, continuation) = AsyncStream<Event>.makeStream()
        let window = unordered ? max(concurrency * 2, 1024) : max(concurrency * 4, 4096)
        let reader = InputReader(fd: 0, window: window)
        reader.start(
            deliver: { pieces, first in continuation.yield(.input(pieces, first)) },
            readFailed: { continuation.yield(.readFailed($0)) })
        let forward = Task {
            for await _ in interrupts { continuation.yield(.interrupt) }
        }
        defer { forward.cancel() }

        let writer = LineWriter(fd: 1)
        var queue: [(JSONStreamSplitter.Piece, Int)] = []   // read, not started
        var queueHead = 0
        var pending: [Int: Outcome] = [:]                   // finished, not yet written (ordered mode)
        var nextToWrite = 0
        var inFlight = 0
        var inputEnded = false
        var interrupted = false
        var readError: String?

        await withDiscardingTaskGroup { group in
            func startQueued() {
                while inFlight < concurrency && queueHead < queue.count && !interrupted {
                    let (piece, index) = queue[queueHead]
                    queueHead += 1
                    inFlight += 1
                    group.addTask { continuation.yield(.done(index, await process(piece, index: index))) }
                }
                if queueHead == queue.count {
                    queue.removeAll(keepingCapacity: true)
                    queueHead = 0
                } else if queueHead >= 1024 && queueHead * 2 >= queue.count {
                    // The queue rarely drains while input streams in: drop the started prefix.
                    queue.removeFirst(queueHead)
                    queueHead = 0
                }
                stats.inFlight.store(inFlight, ordering: .relaxed)
            }
            loop: for await event in events {
                switch event {
                case .input(let pieces, let first):
                    if pieces.isEmpty {
                        inputEnded = true
                    } else if interrupted {
                        reader.gate.release(pieces.count)
                    } else {
                        for (offset, piece) in pieces.enumerated() { queue.append((piece, first + offset)) }
                        startQueued()
                    }
                case .done(let index, let outcome):
                    inFlight -= 1
                    count(outcome)
                    if unordered {
                        write(outcome, to: writer)
                        reader.gate.release(1)
                    } else {
                        pending[index] = outcome
                        var written = 0
                        while let ready = pending.removeValue(forKey: nextToWrite) {
                            write(ready, to: writer)
                            nextToWrite += 1
                            written += 1
                        }
                        if written > 0 { reader.gate.release(written) }
                    }
                    startQueued()
                case .readFailed(let message):
                    readError = message
                    inputEnded = true
                case .interrupt:
                    if interrupted {
                        group.cancelAll()
                        continue
                    }
                    interrupted = true
                    reader.stop()
                    if inFlight > 0 {
                        group.addTask {
                            try? await Task.sleep(for: .seconds(1))
                            continuation.yield(.cancelNow)
                        }
                    }
                case .cancelNow:
                    group.cancelAll()
                }
                if inFlight == 0 && (interrupted || (inputEnded && queueHead == queue.count)) { break loop }
            }
            group.cancelAll()
        }
        // After an interrupt, results behind a command that never started stay pending: write them in order.
        for index in pending.keys.sorted() { write(pending[index]!, to: writer) }
        writer.flush()
        return (interrupted, readError)
    }

    private func count(_ outcome: Outcome) {
        switch outcome.status {
        case .succeeded: stats.succeeded.add(1, ordering: .relaxed)
        case .failed: stats.failed.add(1, ordering: .relaxed)
        case .skipped: stats.skipped.add(1, ordering: .relaxed)
        }
        if outcome.usedFallback { stats.fallbacks.add(1, ordering: .relaxed) }
        stats.tokens.add(outcome.tokens, ordering: .relaxed)
    }

    private func write(_ outcome: Outcome, to writer: LineWriter) {
        if !outcome.line.isEmpty { writer.write(outcome.line) }
    }

    /// Parses, validates and (in execute mode) runs one command; returns its result line.
    func process(_ piece: JSONStreamSplitter.Piece, index: Int) async -> Outcome {
        let command: PlannedCommand
        switch piece.parse() {
        case .failure(let error):
            let apiError = APIError(.invalidCommand, error.message)
            return failed(apiError, id: "cmd-\(index + 1)", index: index, metadata: [:])
        case .success(let value):
            switch WireFormat.command(from: value, position: index + 1) {
            case .failure(let rejection):
                return failed(rejection.error, id: rejection.id, index: index, metadata: rejection.metadata)
            case .success(let decoded):
                command = decoded
            }
        }
        if !resumeIDs.isEmpty && resumeIDs.contains(command.id) {
            return Outcome(line: [], status: .skipped, tokens: 0, usedFallback: false)
        }
        switch mode {
        case .validate:
            let record: JSONValue = ["id": .string(command.id), "index": .int(index), "status": "valid", "metadata": .object(command.metadata)]
            return Outcome(line: Self.line(record), status: .succeeded, tokens: 0, usedFallback: false)
        case .execute(let engine):
            let result = await engine.executeWithFallback(command)
            var line: [UInt8] = []
            line.reserveCapacity(640)
            ResultWriter.record(result, id: command.id, index: index, metadata: command.metadata, provider: providerName, to: &line)
            line.append(0x0a)
            switch result {
            case .success(let finalized):
                return Outcome(line: line, status: .succeeded, tokens: finalized.usage.totalTokens, usedFallback: finalized.telemetry.usedFallback)
            case .failure(let error):
                let tokens = error.partialResponses.reduce(0) { $0 + $1.usage.totalTokens }
                return Outcome(line: line, status: .failed, tokens: tokens, usedFallback: false)
            }
        }
    }

    private func failed(_ error: APIError, id: String, index: Int, metadata: JSONObject) -> Outcome {
        var line: [UInt8] = []
        ResultWriter.failed(error, id: id, index: index, metadata: metadata, provider: providerName, to: &line)
        line.append(0x0a)
        return Outcome(line: line, status: .failed, tokens: 0, usedFallback: false)
    }

    static func line(_ record: JSONValue) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(768)
        JSONSerializer.write(record, to: &bytes)
        bytes.append(0x0a)
        return bytes
    }
}
