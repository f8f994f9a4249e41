import CommandPipeline
import Foundation

/// One collected result line: a command's record in `run`'s schema.
public struct BatchRecord: Sendable {
    /// The command's position in the input (0-based).
    public var index: Int
    public var id: String
    public var succeeded: Bool
    /// The result line, with its newline.
    public var line: [UInt8]
}

/// What `collect` wrote, and what it cost at batch prices.
public struct BatchCollection: Sendable {
    public var commands = 0
    public var failed = 0
    public var costUSD = 0.0
    /// Commands with a priced answer.
    public var priced = 0
    /// Commands without one (model not in the catalog, or no answer).
    public var unpriced = 0
    /// False when the writer stopped the collect early.
    public var complete = true

    /// ", cost $0.001234 at catalog batch prices (3 commands priced, 1 unpriced)", or nothing
    /// when no command was priced.
    public var costSummary: String {
        guard priced > 0 else { return "" }
        var notes = ["\(priced) command\(priced == 1 ? "" : "s") priced"]
        if unpriced > 0 { notes.append("\(unpriced) unpriced") }
        return String(format: ", cost $%.6f at catalog batch prices", costUSD) + " (" + notes.joined(separator: ", ") + ")"
    }
}

extension BatchRun {
    /// Hands `write` exactly one record per command, in input order, once every job has ended
    /// (else `.notFinished`): the answers of every job — a retried request's latest successful
    /// answer — in `run`'s schema with `telemetry.batch` and `batch_job`, priced at `catalog`'s
    /// batch prices; parsed answers are redacted of `secrets` (values under 12 bytes are
    /// placeholders, ignored: `EngineConfiguration.secrets`). `write` returns false to
    /// stop. Collecting twice gives the same lines.
    public func collect(
        catalog: ModelCatalog? = .builtin, secrets: [String] = [], write: (BatchRecord) -> Bool
    ) async throws(BatchError) -> BatchCollection {
        let redactor = SecretRedactor(secrets: secrets)
        let job = try BatchJobFile.load(path)
        let progress = try await endedProgress(job, then: "collect when every job has ended, or use --wait")
        let manifest = try BatchManifest.load(path, job: job)
        let answers = try await BatchAnswers.fetch(job, progress: progress, batch: batch, provider: providerName)
        var summary = BatchCollection()
        for line in manifest.lines {
            let record: BatchRecord
            switch line {
            case .record(let bytes):
                let object = (try? JSONParser.parse(Array(bytes.dropLast())))?.objectValue
                record = BatchRecord(
                    index: object?["index"]?.intValue ?? summary.commands, id: object?["id"]?.stringValue ?? "", succeeded: false, line: bytes)
            case .command(let index, let hash, let value, let chunks):
                let command = try BatchManifest.command(value, index: index, calls: chunks.count)
                let taken = chunks.enumerated().map { call, chunk in answers.outcome(BatchPlan.requestID(index: index, call: call), chunk: chunk) }
                let made = BatchRecords.line(
                    command: command, index: index, inputHash: hash, provider: providerName, job: taken.first?.job ?? "none",
                    outcomes: taken.map(\.result), catalog: catalog, redactor: redactor)
                if let cost = made.cost {
                    summary.costUSD += cost.totalUSD
                    summary.priced += 1
                } else {
                    summary.unpriced += 1
                }
                record = BatchRecord(index: index, id: command.id, succeeded: made.succeeded, line: made.line)
            }
            summary.commands += 1
            if !record.succeeded { summary.failed += 1 }
            guard write(record) else {
                summary.complete = false
                break
            }
        }
        return summary
    }

    /// The progress when every chunk was sent and every job has ended, else `.notFinished`.
    func endedProgress(_ job: BatchJobFile, then advice: String) async throws(BatchError) -> BatchProgress {
        let progress: BatchProgress
        do { progress = try await poll(job) } catch { throw BatchError(.provider, "cannot read the jobs' status: \(error.description)") }
        if progress.unsubmitted > 0 {
            let retrying = job.chunks.contains { $0.requestIDs != nil && ($0.state == .planned || $0.state == .submitting) }
            let again = retrying ? "'pipeline batch retry \(path)'" : "'pipeline batch submit --job \(path)' again with the same input"
            throw BatchError(.notFinished, "\(progress.unsubmitted) of \(job.chunks.count) jobs were never submitted: run \(again) first")
        }
        guard progress.allEnded else {
            throw BatchError(.notFinished, "\(progress.line()); \(advice)")
        }
        return progress
    }
}
