import CommandPipeline

/// What `submit` makes of its input: one entry per command (rejected with its result line, or
/// its calls' requests), and the requests split into chunks — one job each — within the
/// provider's limits. Deterministic: the same input, provider and options give the same plan,
/// which is how a re-run of `submit` recognises the job file it continues.
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

    /// Fills chunks in order within the limits: where a job holds one model only, each model
    /// fills its own. Used by `make` and by a retry's plan, so both split alike.
    struct Packer {
        let limits: BatchLimits
        let maxRequests: Int
        var chunks: [Chunk] = []
        /// The chunk being filled, per model (or one for all models).
        private var open: [String: Int] = [:]

        init(limits: BatchLimits, maxRequestsPerJob: Int?) {
            self.limits = limits
            maxRequests = max(1, min(limits.maxRequests, maxRequestsPerJob ?? limits.maxRequests))
        }

        /// Adds `item` (its size already within `limits.maxBytes`); returns its chunk.
        mutating func add(_ item: BatchRequest, size: Int) -> Int {
            let key = limits.oneModelPerJob ? item.request.model : ""
            var number = open[key]
            if let n = number, chunks[n].requests.count >= maxRequests || chunks[n].bytes > limits.maxBytes - size { number = nil }
            let chosen = number ?? chunks.count
            if number == nil {
                chunks.append(Chunk(model: limits.oneModelPerJob ? item.request.model : "*"))
                open[key] = chosen
            }
            chunks[chosen].requests.append(item)
            chunks[chosen].bytes += size
            return chosen
        }
    }

    var entries: [Entry] = []
    var chunks: [Chunk] = []
    var inputSHA256: String
    var requestCount: Int { chunks.reduce(0) { $0 + $1.requests.count } }

    /// The id of call `call` of command `index`: unique in a job, valid for every provider.
    /// A retry sends the request again under the same id, in a job of its own.
    static func requestID(index: Int, call: Int) -> String { "r\(index)c\(call)" }

    /// A request's size in a job, or why it cannot go in one.
    static func sized(_ item: BatchRequest, call: Int, batch: any BatchCapability, provider: String) -> Result<Int, APIError> {
        let limit = batch.batchLimits.maxBytes
        do {
            let size = try batch.batchSize(of: item)
            guard size <= limit else {
                return .failure(APIError(
                    .invalidCommand, "call \(call) takes \(size) bytes in a batch job, more than the provider's limit of \(limit) for a whole job",
                    path: "plan.calls[\(call)]", provider: provider))
            }
            return .success(size)
        } catch {
            var failure = APIError(wrapping: error, provider: provider, context: "building the batch request of call \(call)")
            if failure.path == nil { failure.path = "plan.calls[\(call)]" }
            return .failure(failure)
        }
    }

    static func make(input: BatchInput, batch: any BatchCapability, providerName: String, maxRequestsPerJob: Int?) -> BatchPlan {
        var plan = BatchPlan(inputSHA256: input.sha256)
        var packer = Packer(limits: batch.batchLimits, maxRequestsPerJob: maxRequestsPerJob)
        for (index, piece) in input.pieces.enumerated() {
            let hash = InputDigest.of(piece.bytes)
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
                switch Self.sized(item, call: call, batch: batch, provider: providerName) {
                case .success(let size): sized.append((item, size))
                case .failure(let error): refused = error
                }
                if refused != nil { break }
            }
            if let refused {
                reject(refused, id: command.id, metadata: command.metadata)
                continue
            }
            let chunkOfCall = sized.map { packer.add($0.0, size: $0.1) }
            plan.entries.append(Entry(index: index, id: command.id, inputHash: hash, command: value, chunks: chunkOfCall, rejectedLine: nil))
        }
        plan.chunks = packer.chunks
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

    /// Job file chunks, all `planned`, numbered from `first` (markers are unique in the job file).
    static func jobChunks(_ chunks: [Chunk], nonce: String, first: Int, retry: Bool) -> [BatchJobFile.Chunk] {
        chunks.enumerated().map { n, chunk in
            BatchJobFile.Chunk(
                marker: "pl-\(nonce)-\(first + n)", model: chunk.model, requests: chunk.requests.count, bytes: chunk.bytes, state: .planned,
                requestIDs: retry ? chunk.requests.map(\.id) : nil)
        }
    }
}
