import CommandPipeline
import Foundation

/// The job file of `pipeline batch`: everything needed to continue a batch run from another
/// process — provider, endpoint, the key's variable (never the key), the input's hash, and one
/// entry per job (chunk) with its idempotency marker, state and the provider's job id. The
/// per-command part (index, id, hash, which chunk holds each call) is the manifest beside it,
/// `JOBFILE.manifest.jsonl`, written once before the first submission. See Design/batch.md.
///
/// Both are written atomically (temporary file, fsync, rename, fsync of the directory): a kill
/// at any moment leaves the previous version or the new one, never a torn file.
struct JobFile: Sendable, Equatable {
    static let format = "pipeline-batch/1"

    enum ChunkState: String, Sendable {
        /// Not sent yet.
        case planned
        /// About to be sent, or sent without the answer recorded: in doubt until reconciled.
        case submitting
        /// The provider accepted it: `jobID` is set.
        case submitted
        /// Never sent: the batch was cancelled first.
        case withdrawn
    }

    struct Chunk: Sendable, Equatable {
        var marker: String
        var model: String
        var requests: Int
        var bytes: Int
        var state: ChunkState
        var jobID: String?
        /// When the submission was started (seconds since 1970), for reconciling.
        var since: Double?
    }

    var provider: String
    var baseURL: String?
    var apiKeyEnv: String?
    var allowInsecureHTTP: Bool
    var capabilities: [String]?
    var nonce: String
    var inputSHA256: String
    var commands: Int
    var requests: Int
    var manifestSHA256: String
    var cancelled: Bool
    var chunks: [Chunk]

    static func manifestPath(_ path: String) -> String { path + ".manifest.jsonl" }
    static func mockDirectory(_ path: String) -> String { path + ".mock" }

    // MARK: encoding

    var json: JSONValue {
        var object: JSONObject = [:]
        object["format"] = .string(Self.format)
        object["provider"] = .string(provider)
        object["base_url"] = baseURL.map(JSONValue.string) ?? .null
        object["api_key_env"] = apiKeyEnv.map(JSONValue.string) ?? .null
        object["allow_insecure_http"] = .bool(allowInsecureHTTP)
        object["capabilities"] = capabilities.map { .array($0.map(JSONValue.string)) } ?? .null
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
            return .object(c)
        })
        return .object(object)
    }

    /// Reads and checks a job file: every field present, of its type, in range.
    static func load(_ path: String) -> Result<JobFile, UsageError> {
        func bad(_ what: String) -> Result<JobFile, UsageError> {
            .failure(UsageError(message: "job file '\(path)' is not a usable pipeline batch job file: \(what)"))
        }
        // The path rule: a regular file (a FIFO or a device is refused without blocking).
        do throws(UsageError) { _ = try PathArgument.check(path, option: "--job", use: .read) } catch { return .failure(error) }
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(UsageError(message: "cannot read job file '\(path)': \(String(cString: strerror(errno)))"))
        }
        guard data.count <= 256 << 20 else { return bad("larger than 256 MiB") }
        let value: JSONValue
        do { value = try JSONParser.parse([UInt8](data)) } catch { return bad("not JSON (\(error.message) at byte \(error.offset))") }
        guard case .object(let o) = value else { return bad("not an object") }
        guard o["format"]?.stringValue == format else { return bad("format is not '\(format)'") }
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
        else { return bad("a field is missing or of the wrong type") }
        var capabilities: [String]?
        if case .array(let list)? = o["capabilities"] {
            capabilities = list.compactMap(\.stringValue)
            guard capabilities?.count == list.count else { return bad("capabilities must be strings") }
        }
        var chunks: [Chunk] = []
        for (i, raw) in rawChunks.enumerated() {
            guard case .object(let c) = raw, let marker = c["marker"]?.stringValue, BatchRequest.isValidID(marker),
                let model = c["model"]?.stringValue, let n = count(c["requests"]), n > 0, let bytes = count(c["bytes"]),
                let state = c["state"]?.stringValue.flatMap(ChunkState.init(rawValue:))
            else { return bad("chunks[\(i)] is malformed") }
            var jobID: String?
            switch c["job_id"] {
            case .string(let s)?: jobID = s
            case .null?, nil: jobID = nil
            default: return bad("chunks[\(i)].job_id is not a string")
            }
            if state == .submitted && jobID == nil { return bad("chunks[\(i)] is submitted without a job id") }
            let since = c["since"]?.doubleValue.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
            chunks.append(Chunk(marker: marker, model: model, requests: n, bytes: bytes, state: state, jobID: jobID, since: since))
        }
        return .success(JobFile(
            provider: provider, baseURL: baseURL, apiKeyEnv: keyEnv, allowInsecureHTTP: insecure, capabilities: capabilities, nonce: nonce,
            inputSHA256: inputSHA, commands: commands, requests: requests, manifestSHA256: manifestSHA, cancelled: cancelled, chunks: chunks))
    }

    func save(_ path: String) -> String? {
        var bytes: [UInt8] = []
        JSONSerializer.write(json, to: &bytes)
        bytes.append(0x0a)
        return AtomicFile.write(bytes, to: path)
    }
}

/// Whole-file replacement that survives a kill or a power cut at any point.
enum AtomicFile {
    /// Writes `bytes` to `path` through `path.tmp-PID`: write all, fsync, rename, fsync the
    /// directory. Returns why it failed (the old file is then untouched), or nil.
    static func write(_ bytes: [UInt8], to path: String) -> String? {
        let temporary = "\(path).tmp-\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return "cannot create '\(temporary)': \(String(cString: strerror(errno)))" }
        var offset = 0
        var failure: String?
        bytes.withUnsafeBytes { buffer in
            while offset < buffer.count {
                let n = systemWrite(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    failure = "cannot write '\(temporary)': \(String(cString: strerror(errno)))"
                    return
                }
                offset += n
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = "cannot sync '\(temporary)': \(String(cString: strerror(errno)))" }
        if close(fd) != 0 && failure == nil { failure = "cannot close '\(temporary)': \(String(cString: strerror(errno)))" }
        if let failure {
            unlink(temporary)
            return failure
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            return "cannot replace '\(path)': \(reason)"
        }
        // Not `NSString.deletingLastPathComponent`: it traps on a one-character name ("s").
        let directory = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let dfd = open(directory, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            let synced = fsync(dfd) == 0
            close(dfd)
            if !synced { return "cannot sync the directory of '\(path)': \(String(cString: strerror(errno)))" }
        }
        return nil
    }
}
