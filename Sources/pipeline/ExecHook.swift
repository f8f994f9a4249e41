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
/// question, one question at a time (Design/extending.md, "Hooks from the CLI"). Every answer
/// names the question it answers by echoing its `index` and `hook`:
///
///     → {"hook":"before","id":"c1","index":0,"command":{…the command, as the wire format writes it…}}
///     ← {"hook":"before","index":0}  |  {…, "command":{…the command to run instead…}}  |  {…, "reject":"why"}
///     → {"hook":"after","id":"c1","index":0,"status":"succeeded","texts":["…"],"usage":{…}}
///     → {"hook":"after","id":"c1","index":0,"status":"failed","error":{"kind":"timeout","message":"…"}}
///     ← {"hook":"after","index":0}  |  {…, "error":"why"}
///
/// The program is a hostile peer (`Design/security.md`): every write and every read has a
/// deadline (`--hook-timeout`, and what is left of the command's `--timeout`); an answer that
/// names another question is a protocol error for this command only; a line answering a question
/// already settled (late, or extra) is dropped, never taken for another command's answer. A
/// program that misses its own deadline, stops reading, closes its stdout or exits is dead: from
/// then on every command is rejected at once with the reason (and after-hooks fail at once).
/// At the end it gets EOF on stdin, then SIGTERM, then SIGKILL, each after a short grace.
final class ExecHook: CommandHook {
    let name: String
    private let process: Process
    private let input: Int32
    private let output: Int32
    /// The program's own deadline for each question (`--hook-timeout`).
    private let timeout: Duration
    /// The command's `--timeout`: a command waits for the hook only as long as it has left.
    private let commandTimeout: Duration?
    /// One exchange at a time; the waiting (poll) runs on this queue, off the pool.
    private let queue = DispatchQueue(label: "pipeline.hook-exec")
    private let state = Mutex(State())
    private let handles: (FileHandle, FileHandle)

    private struct State {
        var buffer: [UInt8] = []
        /// Why the program is dead (set once), or nil.
        var dead: String?
        /// Questions asked, as `index * 2 + phase`: a line naming one of them (other than the
        /// current) is late or extra and dropped. The last `rememberedQuestions` only, oldest
        /// forgotten first (`askedOrder`), so a run of millions of commands keeps a bounded set; a
        /// line for a question older than that is a protocol error for the command being asked.
        var asked: Set<Int> = []
        var askedOrder: [Int] = []
        var askedHead = 0

        mutating func remember(_ key: Int) {
            guard asked.insert(key).inserted else { return }
            askedOrder.append(key)
            if askedOrder.count - askedHead > ExecHook.rememberedQuestions {
                asked.remove(askedOrder[askedHead])
                askedHead += 1
                if askedHead > 4_096 && askedHead * 2 > askedOrder.count {
                    askedOrder.removeFirst(askedHead)
                    askedHead = 0
                }
            }
        }
    }

    /// Questions remembered for spotting late or extra answers.
    static let rememberedQuestions = 65_536

    /// The longest answer line read.
    static let maxAnswerBytes = 64 << 20

    /// `withheld` names environment variables the program does not inherit: the provider keys.
    /// A hook sees commands and outcomes, never credentials; what it prints cannot carry a key
    /// it was never given.
    init(program: String, timeout: Duration = .seconds(30), commandTimeout: Duration? = nil, withheld: Set<String> = []) throws(UsageError) {
        name = "exec:\((program as NSString).lastPathComponent)"
        self.timeout = timeout
        self.commandTimeout = commandTimeout
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
        // Our ends never block: every wait is a poll with a deadline.
        _ = fcntl(input, F_SETFL, fcntl(input, F_GETFL) | O_NONBLOCK)
        _ = fcntl(output, F_SETFL, fcntl(output, F_GETFL) | O_NONBLOCK)
        // Keep the descriptors open as long as the hook lives.
        handles = (toHook.fileHandleForWriting, fromHook.fileHandleForReading)
    }

    /// How long `finish` waits after EOF, and again after SIGTERM.
    static let grace: Duration = .seconds(2)

    /// Closes the program's stdin (its cue to exit), then SIGTERM, then SIGKILL, each after
    /// `grace`; never waits on the program's stderr (it is the CLI's own, not a pipe).
    func finish() {
        queue.sync {
            try? handles.0.close()
            if waitForExit(Self.grace) { return }
            process.terminate()
            if waitForExit(Self.grace) { return }
            kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(Self.grace)
        }
    }

    private func waitForExit(_ limit: Duration) -> Bool {
        let end = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < end { usleep(10_000) }
        return !process.isRunning
    }

    func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand {
        let question: JSONValue = ["hook": "before", "id": .string(context.commandID), "index": .int(context.index), "command": command.wireValue]
        let answer = try await ask(question, context: context, phase: 0)
        if case .string(let why)? = answer["reject"] { throw APIError(.invalidCommand, why) }
        guard let replacement = answer["command"] else { return command }
        // Read here, validated once: the engine checks a command a hook replaced before it runs
        // it (`ValidationUnit`), so its rules are not checked here a second time.
        switch WireFormat.decodedCommand(from: replacement, position: context.index + 1) {
        case .success(let enriched): return enriched
        case .failure(let rejection):
            throw APIError(.invalidCommand, "the command it returned cannot be read: \(rejection.error.message)", path: rejection.error.path)
        }
    }

    func afterSuccess(_ result: FinalizedCommand, context: HookContext) async throws {
        let usage = result.usage
        try await after(
            [
                "hook": "after", "id": .string(context.commandID), "index": .int(context.index), "status": "succeeded",
                "texts": .array(result.responses.map { .string($0.text) }),
                "usage": ["prompt_tokens": .int(usage.promptTokens), "completion_tokens": .int(usage.completionTokens)],
            ], context: context)
    }

    func onError(_ error: APIError, context: HookContext) async throws {
        try await after(
            [
                "hook": "after", "id": .string(context.commandID), "index": .int(context.index), "status": "failed",
                "error": ["kind": .string(error.kind.rawValue), "message": .string(error.message)],
            ], context: context)
    }

    private func after(_ question: JSONValue, context: HookContext) async throws {
        let answer = try await ask(question, context: context, phase: 1)
        if case .string(let why)? = answer["error"] { throw APIError(.internal, why) }
    }

    /// What the question may wait: the hook's deadline, and no more than the command has left
    /// of `--timeout` (nil: the hook's deadline alone).
    private func budget(_ context: HookContext) -> Duration? {
        guard let commandTimeout else { return nil }
        return max(.zero, commandTimeout - context.elapsed)
    }

    /// Sends one question and waits for its answer, off the cooperative pool.
    private func ask(_ question: JSONValue, context: HookContext, phase: Int) async throws -> JSONObject {
        let line = Array(JSONSerializer.serialize(question).utf8) + [0x0a]
        let key = context.index.multipliedReportingOverflow(by: 2).partialValue &+ phase
        let budget = budget(context)
        // Ctrl-C or SIGTERM (the run cancels its commands) ends the wait within a poll slice.
        let cancelled = CancelFlag()
        let reply: Result<JSONObject, APIError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                queue.async { [self] in
                    continuation.resume(
                        returning: exchange(line, key: key, index: context.index, phase: phase, id: context.commandID, budget: budget, cancelled: cancelled))
                }
            }
        } onCancel: {
            cancelled.set()
        }
        return try reply.get()
    }

    private func declareDead(_ reason: String) -> APIError {
        let reason = state.withLock { state in
            if state.dead == nil { state.dead = reason }
            return state.dead!
        }
        return APIError(.internal, "\(reason); the hook is dead, every later command is rejected at once")
    }

    /// Set when the awaiting task is cancelled; the exchange's polls look at it every 100 ms.
    private final class CancelFlag: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .releasing) }
        var isSet: Bool { value.load(ordering: .acquiring) }
    }

    private func exchange(
        _ line: [UInt8], key: Int, index: Int, phase: Int, id: String, budget: Duration?, cancelled: CancelFlag
    ) -> Result<JSONObject, APIError> {
        let settledBefore = state.withLock { state -> String? in
            if let dead = state.dead { return dead }
            state.remember(key)
            return nil
        }
        if let dead = settledBefore { return .failure(APIError(.internal, "\(dead); the hook is dead, every later command is rejected at once")) }
        let start = ContinuousClock.now
        let hookEnd = start + timeout
        let commandLimited = budget.map { $0 < timeout } ?? false
        let end = commandLimited ? start + budget! : hookEnd
        func outOfTime() -> APIError {
            if commandLimited {
                return APIError(.timeout, "the command's --timeout passed while the hook was \(phase == 0 ? "deciding about it" : "hearing how it ended")", retryable: true)
            }
            return declareDead("it did not answer within \(timeout) (--hook-timeout)")
        }
        // Write the whole question, never blocking.
        var written = 0
        while written < line.count {
            let n = line.withUnsafeBytes { systemWrite(input, $0.baseAddress! + written, $0.count - written) }
            if n > 0 {
                written += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                guard wait(for: input, events: Int16(POLLOUT), until: end, cancelled: cancelled) else {
                    if cancelled.isSet {
                        if written > 0 { _ = declareDead("a question was cut short by an interruption") }
                        return .failure(APIError(.cancelled, "cancelled while the hook was \(phase == 0 ? "deciding about it" : "hearing how it ended")"))
                    }
                    // Half a line on the pipe would garble every later question.
                    if written > 0 || !commandLimited { return .failure(declareDead("it stopped reading: a question could not be written within \(commandLimited ? "what --timeout left" : "\(timeout)")")) }
                    return .failure(outOfTime())
                }
                continue
            }
            return .failure(declareDead("it is not listening (its stdin is closed)"))
        }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            // Every complete line first.
            while let answer = state.withLock({ state -> [UInt8]? in
                guard let newline = state.buffer.firstIndex(of: 0x0a) else { return nil }
                let answer = Array(state.buffer[..<newline])
                state.buffer.removeFirst(newline + 1)
                return answer
            }) {
                switch judge(answer, index: index, phase: phase, id: id) {
                case .answer(let object): return .success(object)
                case .stale: continue
                case .mismatch(let why): return .failure(APIError(.internal, "protocol error: \(why)"))
                }
            }
            guard wait(for: output, events: Int16(POLLIN), until: end, cancelled: cancelled) else {
                if cancelled.isSet { return .failure(APIError(.cancelled, "cancelled while the hook was \(phase == 0 ? "deciding about it" : "hearing how it ended")")) }
                return .failure(outOfTime())
            }
            let n = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) { continue }
            guard n > 0 else { return .failure(declareDead("it ended without answering")) }
            let tooLong = state.withLock { state -> Bool in
                state.buffer.append(contentsOf: chunk[0..<n])
                return state.buffer.count > Self.maxAnswerBytes && !state.buffer.contains(0x0a)
            }
            if tooLong { return .failure(declareDead("its answer is longer than 64 MiB")) }
        }
    }

    private enum Judgement {
        case answer(JSONObject)
        /// Names a question settled earlier (a late or extra line): dropped.
        case stale
        case mismatch(String)
    }

    private func judge(_ line: [UInt8], index: Int, phase: Int, id: String) -> Judgement {
        let hook = phase == 0 ? "before" : "after"
        // The line goes into the message whole: the hook unit redacts it, then cuts it (a cut here would come first).
        guard case .object(let object)? = try? JSONParser.parse(line) else {
            return .mismatch("it answered with something that is not a JSON object: \(String(decoding: line, as: UTF8.self))")
        }
        guard case .int(let answered)? = object["index"], case .string(let answeredHook)? = object["hook"], ["before", "after"].contains(answeredHook) else {
            return .mismatch("its answer does not name the question: it must echo \"index\" (\(index)) and \"hook\" (\"\(hook)\")")
        }
        if answered == index && answeredHook == hook {
            if case .string(let answeredID)? = object["id"], answeredID != id {
                return .mismatch("its answer for index \(index) names command '\(answeredID)', not '\(id)'")
            }
            return .answer(object)
        }
        let key = answered.multipliedReportingOverflow(by: 2).partialValue &+ (answeredHook == "before" ? 0 : 1)
        if state.withLock({ $0.asked.contains(key) }) { return .stale }
        return .mismatch("asked about index \(index) (\(hook)), it answered for index \(answered) (\(answeredHook)), a question not asked")
    }

    /// Polls `fd` for `events` until `end` (or cancellation, looked at every 100 ms): whether it is ready.
    private func wait(for fd: Int32, events: Int16, until end: ContinuousClock.Instant, cancelled: CancelFlag) -> Bool {
        while true {
            let left = min(end - ContinuousClock.now, .milliseconds(100))
            guard left > .zero, !cancelled.isSet else { return false }
            var fds = [pollfd(fd: fd, events: events, revents: 0)]
            let waitMs = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&fds, 1, waitMs)
            if ready < 0 && errno == EINTR { continue }
            if ready > 0 { return true }
            if ready < 0 { return false }
            // ready == 0: a slice ended; the loop checks the deadline and the flag again.
        }
    }
}
