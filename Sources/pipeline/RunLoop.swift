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
        case input(JSONStreamSplitter.Piece, Int)
        case endOfInput
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
        let window = unordered ? concurrency : max(concurrency * 4, 1024)
        let reader = InputReader(fd: 0, inFlight: concurrency, window: window)
        reader.start(
            deliver: { piece, index in continuation.yield(piece.map { .input($0, index) } ?? .endOfInput) },
            readFailed: { continuation.yield(.readFailed($0)) })
        let forward = Task {
            for await _ in interrupts { continuation.yield(.interrupt) }
        }
        defer { forward.cancel() }

        let writer = LineWriter(fd: 1)
        var pending: [Int: Outcome] = [:]
        var nextToWrite = 0
        var inFlight = 0
        var inputEnded = false
        var interrupted = false
        var readError: String?

        await withDiscardingTaskGroup { group in
            loop: for await event in events {
                switch event {
                case .input(let piece, let index):
                    if interrupted {
                        reader.inFlightSlots.signal()
                        reader.windowSlots.signal()
                        continue
                    }
                    inFlight += 1
                    stats.inFlight.add(1, ordering: .relaxed)
                    group.addTask { continuation.yield(.done(index, await process(piece, index: index))) }
                case .done(let index, let outcome):
                    inFlight -= 1
                    stats.inFlight.subtract(1, ordering: .relaxed)
                    reader.inFlightSlots.signal()
                    count(outcome)
                    if unordered {
                        write(outcome, to: writer)
                        reader.windowSlots.signal()
                    } else {
                        pending[index] = outcome
                        while let ready = pending.removeValue(forKey: nextToWrite) {
                            write(ready, to: writer)
                            nextToWrite += 1
                            reader.windowSlots.signal()
                        }
                    }
                    if (inputEnded || interrupted) && inFlight == 0 { break loop }
                case .endOfInput:
                    inputEnded = true
                    if inFlight == 0 { break loop }
                case .readFailed(let message):
                    readError = message
                case .interrupt:
                    if interrupted { group.cancelAll(); continue }
                    interrupted = true
                    reader.stop()
                    // Unblock the reader if it waits for a slot; it then sees the stop flag.
                    reader.inFlightSlots.signal()
                    reader.windowSlots.signal()
                    if inFlight == 0 { break loop }
                    group.addTask {
                        try? await Task.sleep(for: .seconds(1))
                        continuation.yield(.cancelNow)
                    }
                case .cancelNow:
                    group.cancelAll()
                }
            }
            group.cancelAll()
        }
        // Ordered mode after an interrupt: everything admitted has finished, so nothing is left pending
        // except results behind a gap that cannot exist; write any remainder in index order anyway.
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
        if resumeIDs.contains(command.id) {
            return Outcome(line: [], status: .skipped, tokens: 0, usedFallback: false)
        }
        switch mode {
        case .validate:
            let record: JSONValue = ["id": .string(command.id), "index": .int(index), "status": "valid", "metadata": .object(command.metadata)]
            return Outcome(line: Self.line(record), status: .succeeded, tokens: 0, usedFallback: false)
        case .execute(let engine):
            let result = await engine.executeWithFallback(command)
            let record = ResultRecord.make(result, id: command.id, index: index, metadata: command.metadata, provider: providerName)
            switch result {
            case .success(let finalized):
                return Outcome(line: Self.line(record), status: .succeeded, tokens: finalized.usage.totalTokens, usedFallback: finalized.telemetry.usedFallback)
            case .failure(let error):
                let tokens = error.partialResponses.reduce(0) { $0 + $1.usage.totalTokens }
                return Outcome(line: Self.line(record), status: .failed, tokens: tokens, usedFallback: false)
            }
        }
    }

    private func failed(_ error: APIError, id: String, index: Int, metadata: JSONObject) -> Outcome {
        let record = ResultRecord.failed(error, id: id, index: index, metadata: metadata, provider: providerName)
        return Outcome(line: Self.line(record), status: .failed, tokens: 0, usedFallback: false)
    }

    static func line(_ record: JSONValue) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(768)
        JSONSerializer.write(record, to: &bytes)
        bytes.append(0x0a)
        return bytes
    }
}
