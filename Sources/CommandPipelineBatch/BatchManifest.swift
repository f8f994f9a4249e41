import CommandPipeline

/// `JOBFILE.manifest.jsonl`, read back: one line per command in input order, checked against
/// the job file's `manifest_sha256`. `collect` re-decodes each command from it; a retry
/// rebuilds the requests it sends again from it (the same requests `submit` built).
struct BatchManifest {
    enum Line {
        /// A command refused at submit: its failed result line (with newline).
        case record([UInt8])
        /// A submitted command: the chunk (of the submit) of each call.
        case command(index: Int, hash: String, value: JSONValue, chunks: [Int])
    }

    var lines: [Line]

    static func load(_ path: String, job: BatchJobFile) throws(BatchError) -> BatchManifest {
        let manifestPath = BatchJobFile.manifestPath(path)
        let bytes = try AtomicFile.read(manifestPath, limit: Int.max, what: "the manifest")
        var digest = SHA256()
        digest.update(bytes)
        guard digest.finalizeHex() == job.manifestSHA256 else {
            throw BatchError(.invalid, "the manifest '\(manifestPath)' does not match job file '\(path)' (its SHA-256 differs)")
        }
        var lines: [Line] = []
        let submitChunks = job.submitChunks
        for raw in bytes.split(separator: 0x0a) {
            guard let line = parse(Array(raw), commands: job.commands, chunks: submitChunks) else {
                throw BatchError(.invalid, "a line of the manifest is malformed ('\(manifestPath)')")
            }
            lines.append(line)
        }
        return BatchManifest(lines: lines)
    }

    /// One line: `commands` bounds its index, `chunks` (the submit's) its calls' chunks.
    private static func parse(_ bytes: [UInt8], commands: Int, chunks submitChunks: Int) -> Line? {
        guard case .object(let o)? = try? JSONParser.parse(bytes) else { return nil }
        if let record = o["record"]?.stringValue { return .record(Array(record.utf8) + [0x0a]) }
        guard let index = o["index"]?.intValue, (0..<commands).contains(index), let hash = o["input_hash"]?.stringValue,
            let value = o["command"], case .array(let list)? = o["chunks"], !list.isEmpty
        else { return nil }
        let chunks = list.compactMap(\.intValue)
        guard chunks.count == list.count, chunks.allSatisfy({ (0..<submitChunks).contains($0) }) else { return nil }
        return .command(index: index, hash: hash, value: value, chunks: chunks)
    }

    /// The command of a manifest line, decoded as `run` decodes it, with its calls' count
    /// checked against the line's chunks.
    static func command(_ value: JSONValue, index: Int, calls: Int) throws(BatchError) -> PlannedCommand {
        guard case .success(let command) = BatchRecords.decode(value, index: index), command.plan.calls.count == calls else {
            throw BatchError(.invalid, "command \(index) of the manifest no longer decodes")
        }
        return command
    }

    /// The requests named by `ids`, built again from their commands as `submit` built them.
    func requests(_ ids: Set<String>) throws(BatchError) -> [String: BatchRequest] {
        var found: [String: BatchRequest] = [:]
        for case .command(let index, _, let value, let chunks) in lines {
            let wanted = chunks.indices.filter { ids.contains(BatchPlan.requestID(index: index, call: $0)) }
            guard !wanted.isEmpty else { continue }
            let command = try Self.command(value, index: index, calls: chunks.count)
            guard case .success(let built) = BatchRecords.requests(for: command) else {
                throw BatchError(.invalid, "command \(index) of the manifest no longer builds its requests")
            }
            for call in wanted {
                let id = BatchPlan.requestID(index: index, call: call)
                found[id] = BatchRequest(id: id, request: built[call])
            }
        }
        guard found.count == ids.count else { throw BatchError(.invalid, "the manifest does not hold every request a retry names") }
        return found
    }
}
