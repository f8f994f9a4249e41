import CommandPipeline
import Foundation

/// What `batch submit` makes of its input: one entry per command (rejected with its result
/// line, or its calls' requests), and the requests split into chunks — one job each — within
/// the provider's limits. Deterministic: the same input, provider and options give the same
/// plan, which is how a re-run of `submit` recognises the job file it continues.
struct BatchPlan {
    struct Entry {
        var index: Int
        var id: String
        var inputHash: String
        /// The command as read (re-decoded by `collect`), nil when rejected.
        var command: JSONValue?
        /// The chunk of each call, in call order.
        var chunks: [Int]
        /// The result line of a command that is not submitted.
        var rejectedLine: [UInt8]?
    }

    struct Chunk {
        var model: String
        var requests: [BatchRequest] = []
        var bytes = 0
    }

    var entries: [Entry] = []
    var chunks: [Chunk] = []
    var inputSHA256: String
    var requestCount: Int { chunks.reduce(0) { $0 + $1.requests.count } }

    /// The id of call `call` of command `index`: unique in the run, valid for every provider.
    static func requestID(index: Int, call: Int) -> String { "r\(index)c\(call)" }

    /// The input as `submit` reads it: split into values as it arrives, hashed as it arrives,
    /// never held whole — like `run`, memory grows with the commands read (each at most
    /// `JSONStreamSplitter.maximumValueBytes`), not with the bytes: garbage keeps only a preview,
    /// so `/dev/zero` on stdin stays flat.
    struct Input {
        var pieces: [JSONStreamSplitter.Piece] = []
        var sha256: String
    }

    /// Reads `fd` to its end; nil with `errno` set when a read fails.
    static func read(fd: Int32) -> Input? {
        var digest = SHA256()
        var splitter = JSONStreamSplitter()
        var pieces: [JSONStreamSplitter.Piece] = []
        let size = 1 << 16
        let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: size)
        defer { chunk.deallocate() }
        while true {
            let n = Foundation.read(fd, chunk.baseAddress!, size)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            let bytes = UnsafeBufferPointer(rebasing: chunk[0..<n])
            digest.update(bytes)
            splitter.feed(bytes) { pieces.append($0) }
        }
        splitter.finish { pieces.append($0) }
        return Input(pieces: pieces, sha256: digest.finalizeHex())
    }

    static func make(input: Input, batch: any BatchCapability, providerName: String, maxRequestsPerJob: Int?) -> BatchPlan {
        var plan = BatchPlan(inputSHA256: input.sha256)
        let limits = batch.batchLimits
        let maxRequests = max(1, min(limits.maxRequests, maxRequestsPerJob ?? limits.maxRequests))
        // The chunk being filled, per model (or one for all models).
        var open: [String: Int] = [:]
        for (index, piece) in input.pieces.enumerated() {
            let hash = BatchRecords.inputHash(piece)
            func reject(_ error: APIError, id: String, metadata: JSONObject) {
                var error = error
                if error.provider == nil && error.kind != .invalidCommand { error.provider = providerName }
                plan.entries.append(Entry(
                    index: index, id: id, inputHash: hash, command: nil, chunks: [],
                    rejectedLine: BatchRecords.rejectedLine(error, id: id, index: index, metadata: metadata, provider: providerName, inputHash: hash)))
            }
            guard case .success(let value) = piece.parse() else {
                if case .failure(let r) = BatchRecords.decode(piece, index: index) { reject(r.error, id: r.id, metadata: r.metadata) }
                continue
            }
            let command: PlannedCommand
            switch BatchRecords.decode(value, index: index) {
            case .failure(let r):
                reject(r.error, id: r.id, metadata: r.metadata)
                continue
            case .success(let decoded): command = decoded
            }
            let requests: [GenerationRequest]
            switch BatchRecords.requests(for: command) {
            case .failure(let error):
                reject(error, id: command.id, metadata: command.metadata)
                continue
            case .success(let built): requests = built
            }
            var sized: [(BatchRequest, Int)] = []
            var refused: APIError?
            for (call, request) in requests.enumerated() {
                let item = BatchRequest(id: requestID(index: index, call: call), request: request)
                do {
                    let size = try batch.batchSize(of: item)
                    guard size <= limits.maxBytes else {
                        refused = APIError(
                            .invalidCommand, "call \(call) takes \(size) bytes in a batch job, more than the provider's limit of \(limits.maxBytes) for a whole job",
                            path: "plan.calls[\(call)]", provider: providerName)
                        break
                    }
                    sized.append((item, size))
                } catch {
                    var failure = APIError(wrapping: error, provider: providerName, context: "building the batch request of call \(call)")
                    if failure.path == nil { failure.path = "plan.calls[\(call)]" }
                    refused = failure
                    break
                }
            }
            if let refused {
                reject(refused, id: command.id, metadata: command.metadata)
                continue
            }
            var chunkOfCall: [Int] = []
            for (item, size) in sized {
                let key = limits.oneModelPerJob ? item.request.model : ""
                var number = open[key]
                if let n = number, plan.chunks[n].requests.count >= maxRequests || plan.chunks[n].bytes + size > limits.maxBytes { number = nil }
                if number == nil {
                    number = plan.chunks.count
                    plan.chunks.append(Chunk(model: limits.oneModelPerJob ? item.request.model : "*"))
                    open[key] = number
                }
                plan.chunks[number!].requests.append(item)
                plan.chunks[number!].bytes += size
                chunkOfCall.append(number!)
            }
            plan.entries.append(Entry(index: index, id: command.id, inputHash: hash, command: value, chunks: chunkOfCall, rejectedLine: nil))
        }
        return plan
    }

    /// The manifest: one JSON line per command, in input order.
    func manifest() -> [UInt8] {
        var out: [UInt8] = []
        for entry in entries {
            var object: JSONObject = ["index": .int(entry.index), "id": .string(entry.id), "input_hash": .string(entry.inputHash)]
            if let line = entry.rejectedLine {
                object["record"] = .string(String(decoding: line.dropLast(), as: UTF8.self))
            } else {
                object["chunks"] = .array(entry.chunks.map(JSONValue.int))
                object["command"] = entry.command ?? .null
            }
            JSONSerializer.write(.object(object), to: &out)
            out.append(0x0a)
        }
        return out
    }

    /// The job file's chunk list for this plan, all `planned`.
    func jobChunks(nonce: String) -> [JobFile.Chunk] {
        chunks.enumerated().map { n, chunk in
            JobFile.Chunk(marker: "pl-\(nonce)-\(n)", model: chunk.model, requests: chunk.requests.count, bytes: chunk.bytes, state: .planned)
        }
    }
}
