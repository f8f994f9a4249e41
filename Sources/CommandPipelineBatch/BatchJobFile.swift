import CommandPipeline

/// The job file of a batch run: everything needed to continue it from another process —
/// where it was sent (provider, endpoint, the key's variable, never the key), the input's hash,
/// and one entry per job (chunk) with its idempotency marker, state and the provider's job id.
/// The per-command part (index, id, hash, which chunk holds each call) is the manifest beside
/// it, `JOBFILE.manifest.jsonl`, written once before the first submission. A retry appends
/// chunks that name the requests they carry. See Design/batch.md.
///
/// Both files are written atomically (`AtomicFile`): a kill at any moment leaves the previous
/// version or the new one, never a torn file.
public struct BatchJobFile: Sendable, Equatable {
    public static let format = "pipeline-batch/1"

    public enum ChunkState: String, Sendable {
        /// Not sent yet.
        case planned
        /// About to be sent, or sent without the answer recorded: in doubt until reconciled.
        case submitting
        /// The provider accepted it: `jobID` is set.
        case submitted
        /// Never sent: the batch was cancelled first.
        case withdrawn
    }

    /// One job of the run.
    public struct Chunk: Sendable, Equatable {
        public var marker: String
        public var model: String
        public var requests: Int
        public var bytes: Int
        public var state: ChunkState
        public var jobID: String?
        /// When the submission was started (seconds since 1970), for reconciling.
        public var since: Double?
        /// A retry's job: the ids of the requests it sends again (nil for a job of the submit,
        /// whose requests the manifest names).
        public var requestIDs: [String]?
    }

    /// Where the run is sent. A job file may come from elsewhere: these are checked against
    /// the caller's own settings (`mismatch(with:)`), never trusted to decide where the key goes.
    public struct Endpoint: Sendable, Equatable {
        public var provider: String
        public var baseURL: String?
        public var apiKeyEnv: String?
        public var allowInsecureHTTP: Bool
        /// The capabilities declared for the server (`--capabilities`), when declared.
        public var capabilities: [String]?

        public init(provider: String, baseURL: String? = nil, apiKeyEnv: String? = nil, allowInsecureHTTP: Bool = false, capabilities: [String]? = nil) {
            self.provider = provider
            self.baseURL = baseURL
            self.apiKeyEnv = apiKeyEnv
            self.allowInsecureHTTP = allowInsecureHTTP
            self.capabilities = capabilities
        }
    }

    public var endpoint: Endpoint
    public var nonce: String
    public var inputSHA256: String
    public var commands: Int
    public var requests: Int
    public var manifestSHA256: String
    public var cancelled: Bool
    public var chunks: [Chunk]

    public static func manifestPath(_ path: String) -> String { path + ".manifest.jsonl" }

    /// The chunks of the submit (a retry's come after them).
    var submitChunks: Int { chunks.prefix { $0.requestIDs == nil }.count }
    /// The job ids recorded so far: never the job of another submission.
    var knownJobs: Set<String> { Set(chunks.compactMap(\.jobID)) }

    // MARK: where the key goes

    /// Why `given` (the caller's settings) is not where this job file's run was sent, or nil
    /// when they agree: the provider (it decides which key variable is read by default), the
    /// endpoint and the key's variable must be the same (absent on both sides = the provider's
    /// defaults), and plain http needs the permission again.
    public func mismatch(with given: Endpoint, path: String) -> BatchError? {
        func normalized(_ url: String?) -> String? {
            guard var url, !url.isEmpty else { return nil }
            while url.hasSuffix("/") { url.removeLast() }
            return url
        }
        func shown(_ url: String) -> String {
            // Never repeat a password from the file.
            guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@"),
                !url[scheme.upperBound..<at].contains("/") else { return url }
            return String(url[..<scheme.upperBound]) + String(url[url.index(after: at)...])
        }
        let hint = "a job file never decides where the key goes: repeat the options 'batch submit' was given, or make a new job file"
        if endpoint.provider != given.provider {
            return BatchError(.invalid, "job file '\(path)' was made for --provider \(endpoint.provider), but this command has --provider \(given.provider)", hint: hint)
        }
        if normalized(endpoint.baseURL) != normalized(given.baseURL) {
            let recorded = endpoint.baseURL.map { "--base-url \(shown($0))" } ?? "the provider's default endpoint"
            let asked = given.baseURL.map { "--base-url \(shown($0))" } ?? "no --base-url"
            return BatchError(.invalid, "job file '\(path)' was made for \(recorded), but this command has \(asked)", hint: hint)
        }
        if (endpoint.apiKeyEnv ?? "") != (given.apiKeyEnv ?? "") {
            let recorded = endpoint.apiKeyEnv.map { "--api-key-env \($0)" } ?? "the provider's default key variable"
            let asked = given.apiKeyEnv.map { "--api-key-env \($0)" } ?? "no --api-key-env"
            return BatchError(.invalid, "job file '\(path)' was made with \(recorded), but this command has \(asked)", hint: hint)
        }
        if endpoint.allowInsecureHTTP && !given.allowInsecureHTTP {
            return BatchError(.invalid, "job file '\(path)' was made with --allow-insecure-http; give it again to send the key over plain http", hint: hint)
        }
        return nil
    }

    // MARK: encoding

    var json: JSONValue {
        var object: JSONObject = [:]
        object["format"] = .string(Self.format)
        object["provider"] = .string(endpoint.provider)
        object["base_url"] = endpoint.baseURL.map(JSONValue.string) ?? .null
        object["api_key_env"] = endpoint.apiKeyEnv.map(JSONValue.string) ?? .null
        object["allow_insecure_http"] = .bool(endpoint.allowInsecureHTTP)
        object["capabilities"] = endpoint.capabilities.map { .array($0.map(JSONValue.string)) } ?? .null
        object["nonce"] = .string(nonce)
        object["input_sha256"] = .string(inputSHA256)
        object["commands"] = .int(commands)
        object["requests"] = .int(requests)
        object["manifest_sha256"] = .string(manifestSHA256)
        object["cancelled"] = .bool(cancelled)
        object["chunks"] = .array(chunks.map { chunk in
            var c: JSONObject = [:]
            c["marker"] = .string(chunk.marker)
            c["model"] = .string(chunk.model)
            c["requests"] = .int(chunk.requests)
            c["bytes"] = .int(chunk.bytes)
            c["state"] = .string(chunk.state.rawValue)
            c["job_id"] = chunk.jobID.map(JSONValue.string) ?? .null
            c["since"] = chunk.since.map(JSONValue.double) ?? .null
            if let ids = chunk.requestIDs { c["request_ids"] = .array(ids.map(JSONValue.string)) }
            return .object(c)
        })
        return .object(object)
    }

    /// Reads and checks a job file: every field present, of its type, in range.
    public static func load(_ path: String) throws(BatchError) -> BatchJobFile {
        func bad(_ what: String) -> BatchError {
            BatchError(.invalid, "job file '\(path)' is not a usable pipeline batch job file: \(what)")
        }
        let bytes = try AtomicFile.read(path, limit: 256 << 20, what: "job file")
        let value: JSONValue
        do { value = try JSONParser.parse(bytes) } catch { throw bad("not JSON (\(error.message) at byte \(error.offset))") }
        guard case .object(let o) = value else { throw bad("not an object") }
        guard o["format"]?.stringValue == format else { throw bad("format is not '\(format)'") }
        func string(_ key: String) -> String? { o[key]?.stringValue }
        func optionalString(_ key: String) -> String?? {
            switch o[key] {
            case .null?, nil: return .some(nil)
            case .string(let s)?: return .some(s)
            default: return nil
            }
        }
        func count(_ v: JSONValue?) -> Int? { v?.intValue.flatMap { (0...Int(Int32.max)).contains($0) ? $0 : nil } }
        guard let provider = string("provider"), let nonce = string("nonce"), BatchRequest.isValidID(nonce),
            let inputSHA = string("input_sha256"), let manifestSHA = string("manifest_sha256"),
            let commands = count(o["commands"]), let requests = count(o["requests"]),
            let baseURL = optionalString("base_url"), let keyEnv = optionalString("api_key_env"),
            let insecure = o["allow_insecure_http"]?.boolValue, let cancelled = o["cancelled"]?.boolValue,
            case .array(let rawChunks)? = o["chunks"]
        else { throw bad("a field is missing or of the wrong type") }
        var capabilities: [String]?
        if case .array(let list)? = o["capabilities"] {
            capabilities = list.compactMap(\.stringValue)
            guard capabilities?.count == list.count else { throw bad("capabilities must be strings") }
        }
        var chunks: [Chunk] = []
        for (i, raw) in rawChunks.enumerated() {
            guard case .object(let c) = raw, let marker = c["marker"]?.stringValue, BatchRequest.isValidID(marker),
                let model = c["model"]?.stringValue, let n = count(c["requests"]), n > 0, let bytes = count(c["bytes"]),
                let state = c["state"]?.stringValue.flatMap(ChunkState.init(rawValue:))
            else { throw bad("chunks[\(i)] is malformed") }
            var jobID: String?
            switch c["job_id"] {
            case .string(let s)?: jobID = s
            case .null?, nil: jobID = nil
            default: throw bad("chunks[\(i)].job_id is not a string")
            }
            if state == .submitted && jobID == nil { throw bad("chunks[\(i)] is submitted without a job id") }
            var requestIDs: [String]?
            if let list = c["request_ids"] {
                let ids = list.arrayValue?.compactMap(\.stringValue) ?? []
                guard ids.count == n, ids.count == list.arrayValue?.count, ids.allSatisfy(BatchRequest.isValidID) else {
                    throw bad("chunks[\(i)].request_ids must be \(n) request ids")
                }
                requestIDs = ids
            } else if chunks.last?.requestIDs != nil {
                throw bad("chunks[\(i)] has no request_ids after a retry's chunk")
            }
            let since = c["since"]?.doubleValue.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
            chunks.append(Chunk(marker: marker, model: model, requests: n, bytes: bytes, state: state, jobID: jobID, since: since, requestIDs: requestIDs))
        }
        return BatchJobFile(
            endpoint: Endpoint(provider: provider, baseURL: baseURL, apiKeyEnv: keyEnv, allowInsecureHTTP: insecure, capabilities: capabilities),
            nonce: nonce, inputSHA256: inputSHA, commands: commands, requests: requests, manifestSHA256: manifestSHA, cancelled: cancelled,
            chunks: chunks)
    }

    /// Writes the job file atomically; throws `.write` when it could not.
    func save(_ path: String) throws(BatchError) {
        var bytes: [UInt8] = []
        JSONSerializer.write(json, to: &bytes)
        bytes.append(0x0a)
        if let problem = AtomicFile.write(bytes, to: path) { throw BatchError.cannotWrite(problem) }
    }
}
