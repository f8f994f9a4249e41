#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CommandPipeline
import Foundation
import Synchronization

/// `--hook-exec PROGRAM`: a hook (`CommandHook`) run by another program, for CLI users. The
/// program is started once and speaks JSON Lines on its stdin and stdout, one answer per
/// question, one question at a time (Design/extending.md, "Hooks from the CLI"):
///
///     → {"hook":"before","id":"c1","index":0,"command":{…the command, as the wire format writes it…}}
///     ← {}  |  {"command":{…the command to run instead…}}  |  {"reject":"why"}
///     → {"hook":"after","id":"c1","index":0,"status":"succeeded","texts":["…"],"usage":{…}}
///     → {"hook":"after","id":"c1","index":0,"status":"failed","error":{"kind":"timeout","message":"…"}}
///     ← {}  |  {"error":"why"}
///
/// A before-answer that rejects, or that is missing (the program died, said nothing within
/// `timeout`, or wrote something unreadable), rejects the command naming the hook; an after-answer
/// with an error, or missing, is a hook failure: the result stays as it was.
final class ExecHook: CommandHook {
    let name: String
    private let process: Process
    private let input: Int32
    private let output: Int32
    private let timeout: Duration
    /// One exchange at a time; the blocking reads and writes run on this queue, off the pool.
    private let queue = DispatchQueue(label: "pipeline.hook-exec")
    private let buffer = Mutex<[UInt8]>([])

    /// `withheld` names environment variables the program does not inherit: the provider keys.
    /// A hook sees commands and outcomes, never credentials; what it prints cannot carry a key
    /// it was never given.
    init(program: String, timeout: Duration = .seconds(30), withheld: Set<String> = []) throws(UsageError) {
        name = "exec:\((program as NSString).lastPathComponent)"
        self.timeout = timeout
        let toHook = Pipe(), fromHook = Pipe()
        process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.environment = ProcessInfo.processInfo.environment.filter { !withheld.contains($0.key) }
        process.standardInput = toHook
        process.standardOutput = fromHook
        do { try process.run() } catch {
            throw UsageError(message: "option '--hook-exec': cannot start '\(program)': \(error.localizedDescription)")
        }
        input = toHook.fileHandleForWriting.fileDescriptor
        output = fromHook.fileHandleForReading.fileDescriptor
        // Keep the descriptors open as long as the hook lives.
        handles = (toHook.fileHandleForWriting, fromHook.fileHandleForReading)
    }

    private let handles: (FileHandle, FileHandle)

    /// Closes the program's stdin (its cue to exit) and waits for it a little.
    func finish() {
        queue.sync {
            try? handles.0.close()
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { process.terminate() }
        }
    }

    func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand {
        let question: JSONValue = ["hook": "before", "id": .string(context.commandID), "index": .int(context.index), "command": command.wireValue]
        let answer = try await ask(question)
        if case .string(let why)? = answer["reject"] { throw APIError(.invalidCommand, why) }
        guard let replacement = answer["command"] else { return command }
        switch WireFormat.command(from: replacement, position: context.index + 1) {
        case .success(let enriched): return enriched
        case .failure(let rejection):
            throw APIError(.invalidCommand, "the command it returned is not valid: \(rejection.error.message)", path: rejection.error.path)
        }
    }

    func afterSuccess(_ result: FinalizedCommand, context: HookContext) async throws {
        let usage = result.usage
        try await after([
            "hook": "after", "id": .string(context.commandID), "index": .int(context.index), "status": "succeeded",
            "texts": .array(result.responses.map { .string($0.text) }),
            "usage": ["prompt_tokens": .int(usage.promptTokens), "completion_tokens": .int(usage.completionTokens)],
        ])
    }

    func onError(_ error: APIError, context: HookContext) async throws {
        try await after([
            "hook": "after", "id": .string(context.commandID), "index": .int(context.index), "status": "failed",
            "error": ["kind": .string(error.kind.rawValue), "message": .string(error.message)],
        ])
    }

    private func after(_ question: JSONValue) async throws {
        let answer = try await ask(question)
        if case .string(let why)? = answer["error"] { throw APIError(.internal, why) }
    }

    /// Sends one line and reads one line back (at most `timeout`), off the cooperative pool.
    private func ask(_ question: JSONValue) async throws -> JSONObject {
        let line = Array(JSONSerializer.serialize(question).utf8) + [0x0a]
        let reply: Result<[UInt8], APIError> = await withCheckedContinuation { continuation in
            queue.async { [self] in continuation.resume(returning: exchange(line)) }
        }
        let bytes = try reply.get()
        guard case .object(let object)? = try? JSONParser.parse(bytes) else {
            throw APIError(.internal, "it answered with something that is not a JSON object: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
        }
        return object
    }

    private func exchange(_ line: [UInt8]) -> Result<[UInt8], APIError> {
        var written = 0
        while written < line.count {
            let n = line.withUnsafeBytes { systemWrite(input, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return .failure(APIError(.internal, "it is not listening (its stdin is closed)")) }
            written += n
        }
        let end = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let newline = buffer.withLock({ $0.firstIndex(of: 0x0a) }) {
                return .success(buffer.withLock { buffer in
                    let answer = Array(buffer[..<newline])
                    buffer.removeFirst(newline + 1)
                    return answer
                })
            }
            let left = end - ContinuousClock.now
            guard left > .zero else { return .failure(APIError(.timeout, "it did not answer within \(timeout)")) }
            var fds = [pollfd(fd: output, events: Int16(POLLIN), revents: 0)]
            let waitMs = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&fds, 1, waitMs)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return .failure(APIError(.internal, "it ended without answering")) }
            buffer.withLock { $0.append(contentsOf: chunk[0..<n]) }
            if buffer.withLock({ $0.count }) > 64 << 20 { return .failure(APIError(.internal, "its answer is longer than 64 MiB")) }
        }
    }
}
