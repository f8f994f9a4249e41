#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing

/// A `pipeline` process the test drives by hand. Every wait is bounded: a watchdog kills the
/// process after `limit` seconds, so a blocking read of its pipes always ends.
final class Launched: @unchecked Sendable {
    let process = Process()
    private let exited = DispatchSemaphore(value: 0)

    /// Runs `executable` (default: the built `pipeline`) with the given standard streams.
    init(_ arguments: [String], executable: URL = CLI.binary, stdin: Any?, stdout: Any?, stderr: Any? = nil, limit: Double = 120) throws {
        process.executableURL = executable
        process.arguments = arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr ?? FileHandle.nullDevice
        process.terminationHandler = { [exited] _ in exited.signal() }
        try process.run()
        let pid = process.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + limit) { [weak self] in
            if self?.process.isRunning == true { kill(pid, SIGKILL) }
        }
    }

    /// Waits at most `seconds` for the exit; on timeout kills the process and returns nil.
    /// A process killed by a signal (a trap, the watchdog) also returns nil.
    @available(*, noasync, message: "blocks its thread; use `await exited(seconds:)`")
    func wait(seconds: Double = 60) -> Int32? {
        if exited.wait(timeout: .now() + seconds) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            _ = exited.wait(timeout: .now() + 10)
            return nil
        }
        return process.terminationReason == .exit ? process.terminationStatus : nil
    }

    /// `wait(seconds:)` on a thread of its own, for async tests (the pool is never blocked).
    func exited(seconds: Double = 60) async throws -> Int32? {
        try await onOwnThread { self.wait(seconds: seconds) }
    }
}

/// A finished bounded run: what it printed and its exit status (nil: killed, trapped or hung).
struct Finished {
    var status: Int32?
    var stdout: Data
    var stderr: String
    var text: String { String(decoding: stdout, as: UTF8.self) }
    var lines: [String] { text.split(separator: "\n").map(String.init) }
    var records: [[String: Any]] {
        lines.map { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? ["unparsed": $0] }
    }
}

/// Runs the built `pipeline` with `stdin`, reading its output concurrently, for at most `seconds`;
/// started, drained and waited for on a thread of its own (never on the cooperative pool).
func bounded(_ arguments: [String], stdin: Data, seconds: Double = 120, executable: URL = CLI.binary, currentDirectory: URL? = nil) async throws -> Finished {
    try await onOwnThread { try boundedBlocking(arguments, stdin: stdin, seconds: seconds, executable: executable, currentDirectory: currentDirectory) }
}

@available(*, noasync, message: "blocks its thread until the run ends; use `try await bounded(...)`")
private func boundedBlocking(_ arguments: [String], stdin: Data, seconds: Double, executable: URL, currentDirectory: URL?) throws -> Finished {
    let input = Pipe(), output = Pipe(), errors = Pipe()
    let run = try Launched(arguments, executable: executable, stdin: input, stdout: output, stderr: errors, limit: seconds)
    let writer = Thread {
        try? input.fileHandleForWriting.write(contentsOf: stdin)
        try? input.fileHandleForWriting.close()
    }
    writer.start()
    let errorText = Mutex<Data>(Data())
    let done = DispatchSemaphore(value: 0)
    Thread {
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        errorText.withLock { $0 = data }
        done.signal()
    }.start()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    done.wait()
    let status = run.wait(seconds: seconds)
    return Finished(status: status, stdout: out, stderr: String(decoding: errorText.withLock { $0 }, as: UTF8.self))
}

func bounded(_ arguments: [String], stdin: String = "", seconds: Double = 120) async throws -> Finished {
    try await bounded(arguments, stdin: Data(stdin.utf8), seconds: seconds)
}

/// Reads a pipe until `count` newlines arrived (or end of file); the read blocks, the pipe's
/// writer is the bounded process.
func readLines(_ handle: FileHandle, count: Int) -> Data {
    var received = Data()
    while received.reduce(0, { $0 + ($1 == 0x0a ? 1 : 0) }) < count {
        let chunk = handle.availableData
        if chunk.isEmpty { break }
        received.append(chunk)
    }
    return received
}

func shellQuoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

let okCommand = #"{"model":"m","prompt":"x"}"#

@Suite struct CLIFlagRangeTests {
    @Test(arguments: [
        ("--concurrency", "9223372036854775807", "1 to 10000"), ("--concurrency", "10001", "1 to 10000"),
        ("--reorder-buffer-mb", "0", "1 to 65536"), ("--reorder-buffer-mb", "65537", "1 to 65536"),
        ("--timeout", "1e16", "0.001 to 604800"), ("--timeout", "0.0001", "0.001 to 604800"), ("--timeout", "nan", "0.001 to 604800"),
        ("--call-timeout", "1e16", "0.001 to 604800"), ("--call-timeout", "604801", "0.001 to 604800"),
        ("--max-attempts", "101", "1 to 100"), ("--max-attempts", "99999999999999999999", "1 to 100"),
        ("--rate-limit-rpm", "9223372036854775807", "1 to 10000000"), ("--rate-limit-tpm", "10000000001", "1 to 10000000000"),
        ("--mock-latency-ms", "3600001", "0 to 3600000"), ("--mock-latency-ms", "-1", "0 to 3600000"),
        ("--mock-faults", "jitter_ms=9223372036854775807", "0 to 3600000"), ("--mock-faults", "retry_after_ms=3600001", "0 to 3600000"),
    ])
    func aFlagOutOfItsRangeIsAUsageErrorNamingFlagAndRange(flag: String, value: String, range: String) async throws {
        let run = try await bounded([flag, value], stdin: okCommand)
        #expect(run.status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("'\(flag)'"), "\(run.stderr)")
        #expect(run.stderr.contains(range), "\(run.stderr)")
    }

    @Test func theEdgesOfEveryRangeAreAccepted() async throws {
        let run = try await bounded(
            ["--quiet", "--concurrency", "10000", "--reorder-buffer-mb", "65536", "--timeout", "604800", "--call-timeout", "0.001", "--max-attempts", "100",
             "--rate-limit-rpm", "10000000", "--rate-limit-tpm", "10000000000", "--mock-latency-ms", "0",
             "--mock-faults", "jitter_ms=0,retry_after_ms=3600000"], stdin: okCommand)
        #expect(run.status == 0, "\(run.stderr)")
        let low = try await bounded(["--quiet", "--concurrency", "1", "--reorder-buffer-mb", "1", "--timeout", "0.001", "--max-attempts", "1", "--rate-limit-rpm", "1", "--rate-limit-tpm", "1"], stdin: "")
        #expect(low.status == 0, "\(low.stderr)")
    }

    @Test func theHelpStatesTheRanges() async throws {
        let help = try await bounded(["--help"]).text
        for text in ["1–10000", "1–65536 MiB", "0.001–604800", "1–100 ", "0–3600000", "SIGHUP", "3 results could not be written"] {
            #expect(help.contains(text), "\(text)")
        }
    }

    @Test func aDirectoryAsResumeFileIsAUsageError() async throws {
        let dir = try CLI.temporaryDirectory()
        let run = try await bounded(["--resume", dir.path], stdin: okCommand)
        #expect(run.status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("is a directory"))
    }

    /// /dev/zero would be read forever and a FIFO would wait for a writer: both are refused at once.
    @Test func aResumeFileThatIsNotARegularFileIsAUsageError() async throws {
        let dir = try CLI.temporaryDirectory()
        let fifo = dir.appendingPathComponent("results.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        for path in ["/dev/zero", fifo] {
            let run = try await bounded(["--resume", path], stdin: okCommand, seconds: 30)
            #expect(run.status == 2, "\(path): \(run.stderr)")
            #expect(run.stdout.isEmpty)
            #expect(run.stderr.contains("not a regular file"), "\(path): \(run.stderr)")
        }
        let empty = try await bounded(["--resume", "/dev/null", "--quiet"], stdin: okCommand, seconds: 30)
        #expect(empty.status == 0 && empty.lines.count == 1, "/dev/null means no earlier results")
    }

    /// Resume matches the command itself (id and a digest of its input bytes), not its
    /// position: an input edited between runs never skips a command that did not succeed.
    @Test func anEditedInputNeverSkipsACommandThatDidNotSucceed() async throws {
        let dir = try CLI.temporaryDirectory()
        let results = dir.appendingPathComponent("r.jsonl")
        // Repeated ids: "one" fails, "two" succeeds; then a command is put in front.
        let one = #"{"id":"a","model":"flaky","prompt":"one"}"#, two = #"{"id":"a","model":"ok","prompt":"two"}"#
        let first = try await bounded(["--quiet", "--mock-fail-model", "flaky", "--max-attempts", "1"], stdin: one + "\n" + two, seconds: 30)
        try first.stdout.write(to: results)
        let edited = try await bounded(
            ["--quiet", "--mock-fail-model", "flaky", "--max-attempts", "1", "--resume", results.path],
            stdin: #"{"id":"new","model":"ok","prompt":"x"}"# + "\n" + one + "\n" + two, seconds: 30)
        #expect(edited.records.map { $0["index"] as? Int } == [0, 1], "the new command and the failed one run; the success is skipped: \(edited.text)")
        #expect(edited.records.map { $0["status"] as? String } == ["succeeded", "failed"])

        // Generated ids: cmd-1 succeeded as "A"; a new "B" now stands first and is cmd-1.
        let a = #"{"model":"ok","prompt":"A"}"#
        let firstA = try await bounded(["--quiet"], stdin: a, seconds: 30)
        try firstA.stdout.write(to: results)
        let b = try await bounded(["--quiet", "--resume", results.path], stdin: #"{"model":"ok","prompt":"B"}"# + "\n" + a, seconds: 30)
        // B (now cmd-1) must run; A is now cmd-2, another id, so it runs again too (safe, not lost).
        #expect(b.records.map { $0["id"] as? String } == ["cmd-1", "cmd-2"], "\(b.text)")
        #expect((b.records.first?["responses"] as? [[String: Any]])?.first?["text"] as? String == "echo: B")
    }

    /// `"id": null` is named `cmd-N` like a missing id, by the decoder and by resume alike.
    @Test func aNullIdIsResumedLikeAMissingOne() async throws {
        let dir = try CLI.temporaryDirectory()
        let results = dir.appendingPathComponent("r.jsonl")
        let input = #"{"id":null,"model":"mock","prompt":"a"}"#
        let first = try await bounded(["--quiet"], stdin: input, seconds: 30)
        #expect(first.status == 0 && first.lines.count == 1)
        try first.stdout.write(to: results)
        let resumed = try await bounded(["--quiet", "--resume", results.path], stdin: input, seconds: 30)
        #expect(resumed.status == 0)
        #expect(resumed.stdout.isEmpty, "the command that succeeded is not paid for again: \(resumed.text)")
    }
}

@Suite struct CLIOutputFailureTests {
    /// Plain results and event lines (written from each command's task) alike.
    @Test(arguments: [[String](), ["--events"]])
    func stdoutOnDevFullEndsWithStatus3AndAMessage(flags: [String]) throws {
        let errors = Pipe()
        let input = String(repeating: okCommand + "\n", count: 50)
        let stdin = Pipe()
        let run = try Launched(["--quiet"] + flags, stdin: stdin, stdout: FileHandle(forWritingAtPath: "/dev/full"), stderr: errors)
        try? stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(run.wait() == 3)
        #expect(message.contains("cannot write results: No space left on device"), "\(message)")
        #expect(!message.contains("succeeded"), "no summary claiming success")
    }

    /// A file-size limit makes the kernel take part of a 64 KiB block, then refuse: the file is cut
    /// back to its last whole line, and every line in it parses.
    @Test func aWriteFailingMidBlockLeavesOnlyWholeLinesInTheFile() throws {
        let dir = try CLI.temporaryDirectory()
        let output = dir.appendingPathComponent("out.jsonl")
        let input = dir.appendingPathComponent("in.jsonl")
        try String(repeating: okCommand + "\n", count: 2000).write(to: input, atomically: true, encoding: .utf8)
        let errors = Pipe()
        // ulimit -f counts 1024-byte blocks: 40 KiB, not a multiple of a line.
        let script = "ulimit -f 40; exec \(shellQuoted(CLI.binary.path)) --quiet < \(shellQuoted(input.path)) > \(shellQuoted(output.path))"
        let run = try Launched(["-c", script], executable: URL(fileURLWithPath: "/bin/bash"), stdin: FileHandle.nullDevice, stdout: FileHandle.nullDevice, stderr: errors)
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(run.wait() == 3)
        #expect(message.contains("cannot write results: File too large"), "\(message)")
        let data = try Data(contentsOf: output)
        #expect(data.count > 0 && data.count < 40 * 1024)
        #expect(data.last == 0x0a, "the torn last line was cut off")
        let lines = data.split(separator: 0x0a)
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0))) != nil })
        #expect(message.contains("after \(lines.count) result lines written"), "\(message)")
    }

    /// The consumer reads one line and goes away while commands that would take an hour are in
    /// flight: the run stops at once (exit 3), it does not run to the end.
    @Test func aClosedPipeStopsThePaidRunPromptly() throws {
        let stdin = Pipe(), stdout = Pipe(), errors = Pipe()
        let run = try Launched(["--unordered", "--concurrency", "4", "--mock-latency-ms", "3600000"], stdin: stdin, stdout: stdout, stderr: errors)
        try? stdin.fileHandleForWriting.write(contentsOf: Data((#"{"id":"bad","plan":{}}"# + "\n" + String(repeating: okCommand + "\n", count: 20)).utf8))
        let first = readLines(stdout.fileHandleForReading, count: 1)
        #expect(String(decoding: first, as: UTF8.self).contains(#""id":"bad""#))
        try stdout.fileHandleForReading.close()
        let status = run.wait(seconds: 60)
        #expect(status == 3, "the run went on after its reader left")
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(message.contains("cannot write results: Broken pipe"), "\(message)")
        try? stdin.fileHandleForWriting.close()
    }

    @Test func closedStdoutIsStatus3AndClosedStdinIsStatus2() throws {
        for (redirect, expected, text) in [(">&-", Int32(3), "stdout is closed"), ("<&-", Int32(2), "cannot read stdin: it is closed")] {
            let errors = Pipe(), stdout = Pipe()
            let script = "exec \(shellQuoted(CLI.binary.path)) --quiet \(redirect)"
            let run = try Launched(["-c", script], executable: URL(fileURLWithPath: "/bin/sh"), stdin: Pipe(), stdout: stdout, stderr: errors)
            let out = stdout.fileHandleForReading.readDataToEndOfFile()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(run.wait(seconds: 30) == expected, "\(redirect): hung or wrong status; \(message)")
            #expect(message.contains(text), "\(message)")
            #expect(out.isEmpty)
        }
        // --help into a closed stdout is an output failure too.
        let errors = Pipe()
        let help = try Launched(["-c", "exec \(shellQuoted(CLI.binary.path)) --help >&-"], executable: URL(fileURLWithPath: "/bin/sh"), stdin: nil, stdout: nil, stderr: errors)
        _ = errors.fileHandleForReading.readDataToEndOfFile()
        #expect(help.wait(seconds: 30) == 3)
    }

    /// stdin is a non-blocking pipe and its writer is slow: EAGAIN is not the end of input.
    @Test func aNonBlockingStdinWaitsForData() throws {
        let stdin = Pipe(), stdout = Pipe()
        let fd = stdin.fileHandleForReading.fileDescriptor
        #expect(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0)
        let run = try Launched(["--quiet"], stdin: stdin, stdout: stdout)
        try? stdin.fileHandleForWriting.write(contentsOf: Data((#"{"id":"first","model":"m","prompt":"a"}"# + "\n").utf8))
        // The first result is out, so the CLI has read everything there was and met an empty pipe.
        let first = readLines(stdout.fileHandleForReading, count: 1)
        #expect(String(decoding: first, as: UTF8.self).contains(#""id":"first""#))
        try? stdin.fileHandleForWriting.write(contentsOf: Data((#"{"id":"second","model":"m","prompt":"b"}"# + "\n").utf8))
        try stdin.fileHandleForWriting.close()
        let rest = stdout.fileHandleForReading.readDataToEndOfFile()
        #expect(run.wait() == 0)
        #expect(String(decoding: rest, as: UTF8.self).contains(#""id":"second""#), "the second command was read")
    }
}

@Suite struct CLIResumeHardeningTests {
    func shorthand(_ id: String, model: String = "ok", prompt: String = "p") -> String {
        #"{"id":"\#(id)","model":"\#(model)","prompt":"\#(prompt)"}"#
    }

    /// `pipeline --resume out.jsonl < in >> out.jsonl` after a crash that tore the last line.
    @Test func resumingIntoTheSameFileAfterATornLineKeepsEveryLineParseable() async throws {
        let dir = try CLI.temporaryDirectory()
        let ids = (1...5).map { "c\($0)" }
        let input = ids.map { shorthand($0, model: $0 == "c2" ? "flaky" : "ok") }.joined(separator: "\n") + "\n"
        try input.write(to: dir.appendingPathComponent("in.jsonl"), atomically: true, encoding: .utf8)
        let first = try await bounded(["--quiet", "--mock-fail-model", "flaky"], stdin: input)
        #expect(first.status == 1)
        // The crash: c1–c3 written, c4's record torn halfway (it succeeded, but is not whole).
        let lines = first.lines
        let torn = String(lines[3].prefix(lines[3].count / 2))
        try (lines[0..<3].joined(separator: "\n") + "\n" + torn).write(to: dir.appendingPathComponent("out.jsonl"), atomically: true, encoding: .utf8)

        let script = "cd \(shellQuoted(dir.path)) && \(shellQuoted(CLI.binary.path)) --quiet --resume out.jsonl < in.jsonl >> out.jsonl"
        let run = try Launched(["-c", script], executable: URL(fileURLWithPath: "/bin/sh"), stdin: nil, stdout: nil)
        #expect(try await run.exited() == 0)
        let all = try String(contentsOf: dir.appendingPathComponent("out.jsonl"), encoding: .utf8).split(separator: "\n").map(String.init)
        // Exactly one line does not parse: the torn one, left as it was on a line of its own.
        let unparsed = all.filter { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) == nil }
        #expect(unparsed == [torn])
        let records = all.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
        let succeeded = records.filter { $0["status"] as? String == "succeeded" }.compactMap { $0["id"] as? String }
        #expect(Set(succeeded) == Set(ids), "c2 (failed), c4 (torn) and c5 (never written) ran again")
        #expect(succeeded.count == ids.count, "nothing that succeeded ran twice")
    }

    @Test(arguments: [false, true])
    func aRepeatedIdIsSkippedOnlyWhereItSucceeded(failingFirst: Bool) async throws {
        // Two commands share the id "a"; one of them failed in the first run.
        let input = [shorthand("a", model: failingFirst ? "flaky" : "ok", prompt: "one"), shorthand("a", model: failingFirst ? "ok" : "flaky", prompt: "two")].joined(separator: "\n")
        let first = try await bounded(["--quiet", "--mock-fail-model", "flaky"], stdin: input)
        let dir = try CLI.temporaryDirectory(files: ["out.jsonl": first.text])
        let second = try await bounded(["--quiet", "--resume", dir.appendingPathComponent("out.jsonl").path], stdin: input)
        #expect(second.status == 0)
        #expect(second.records.count == 1)
        #expect(second.records.first?["index"] as? Int == (failingFirst ? 0 : 1), "the occurrence that failed runs again")
        #expect(second.records.first?[path: "responses.0.text"] as? String == (failingFirst ? "echo: one" : "echo: two"))
    }

    /// Unordered output, crash: only the second occurrence of "a" was written. The first must run.
    @Test func aSuccessOfALaterOccurrenceNeverSkipsAnEarlierOne() async throws {
        let input = [shorthand("a", prompt: "one"), shorthand("a", prompt: "two")].joined(separator: "\n")
        let full = try await bounded(["--quiet"], stdin: input)
        let dir = try CLI.temporaryDirectory(files: ["out.jsonl": full.lines[1] + "\n"])
        let second = try await bounded(["--quiet", "--resume", dir.appendingPathComponent("out.jsonl").path], stdin: input)
        #expect(second.records.map { $0["index"] as? Int } == [0])
        // With the input edited (a command inserted before), the id still matches once.
        let shifted = try await bounded(["--quiet", "--resume", dir.appendingPathComponent("out.jsonl").path], stdin: shorthand("new") + "\n" + shorthand("z") + "\n" + shorthand("a", prompt: "two"))
        #expect(shifted.records.compactMap { $0["id"] as? String } == ["new", "z"])
    }
}

@Suite struct CLIInputHardeningTests {
    @Test func aByteOrderMarkIsSkipped() async throws {
        let run = try await bounded(["--quiet"], stdin: "\u{FEFF}" + okCommand + "\n" + okCommand)
        #expect(run.status == 0)
        #expect(run.records.map { $0["id"] as? String } == ["cmd-1", "cmd-2"])
        #expect(run.records.map { $0["index"] as? Int } == [0, 1])
    }

    /// What Python's `json.dumps(command, indent=0)` prints: nested `{` in column 0.
    @Test func indentZeroOutputRunsAsOneCommandEach() async throws {
        let command = "{\n\"id\": \"ID\",\n\"plan\": {\n\"calls\": [\n{\n\"model\": \"m\",\n\"parts\": [\n{\n\"type\": \"text\",\n\"text\": \"hi\"\n}\n]\n}\n]\n},\n\"metadata\": {\n\"k\": {\n\"deep\": true\n}\n}\n}"
        let input = ["a", "b", "c"].map { command.replacingOccurrences(of: "ID", with: $0) }.joined(separator: "\n")
        let run = try await bounded(["--quiet"], stdin: input)
        #expect(run.status == 0, "\(run.text)")
        #expect(run.records.map { $0["id"] as? String } == ["a", "b", "c"])
    }

    @Test func aStringEndingInABackslashDoesNotSwallowTheNextCommand() async throws {
        let run = try await bounded(["--quiet"], stdin: #"{"id":"x","model":"m","prompt":"ends in \"# + "\n" + #"{"id":"ok","model":"m","prompt":"b"}"# + "\n" + #"[{"id":"in-array","model":"m","prompt":"c"}]"#)
        #expect(run.records.map { $0["id"] as? String } == ["cmd-1", "ok", "in-array"])
        #expect(run.records.map { $0["status"] as? String } == ["failed", "succeeded", "succeeded"])
        #expect((run.records[0][path: "error.message"] as? String)?.contains("line 1, byte offset") == true)
    }

    /// A value over the 64 MiB cap is one failed record; endless garbage is one record; what
    /// follows still runs.
    @Test func oversizedValuesAndEndlessGarbageAreOneRecordEach() async throws {
        var input = Data(#"{"id":"big","model":"m","prompt":""#.utf8)
        input.append(Data(repeating: UInt8(ascii: "x"), count: 65 << 20))
        input.append(Data(("\"}\n" + okCommand + "\n").utf8))
        input.append(Data(repeating: 0, count: 8 << 20))
        input.append(Data(("\n" + okCommand).utf8))
        let run = try await bounded(["--quiet"], stdin: input, seconds: 300)
        #expect(run.status == 1)
        #expect(run.records.map { $0["status"] as? String } == ["failed", "succeeded", "failed", "succeeded"])
        #expect((run.records.first?[path: "error.message"] as? String)?.contains("larger than 64 MiB") == true)
        #expect((run.records[2][path: "error.message"] as? String)?.contains("input is not JSON") == true)
        #expect(run.stdout.count < 16_384, "error records carry a preview, not the input")
    }

    @Test func invalidUTF8AndDuplicateKeysArePreciseErrors() throws {
        var bytes = Data(#"{"id":"u","model":"m","prompt":"bad "#.utf8)
        bytes.append(contentsOf: [0xFF, 0x22, 0x7D, 0x0A])
        bytes.append(Data((#"{"id":"d","model":"m","prompt":"a","metadata":{"k":1,"k":2}}"# + "\n").utf8))
        bytes.append(Data(okCommand.utf8))
        let stdin = Pipe(), stdout = Pipe()
        let run = try Launched(["--quiet"], stdin: stdin, stdout: stdout)
        try? stdin.fileHandleForWriting.write(contentsOf: bytes)
        try stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        #expect(run.wait() == 1)
        let records = String(decoding: out, as: UTF8.self).split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
        #expect(records.map { $0["status"] as? String } == ["failed", "failed", "succeeded"])
        #expect(records[0][path: "error.kind"] as? String == "invalid_command")
        #expect((records[0][path: "error.message"] as? String)?.contains("byte offset 36: invalid UTF-8") == true, "\(records[0])")
        #expect((records[1][path: "error.message"] as? String)?.contains("duplicate key \"k\"") == true)
        #expect(records[1][path: "error.path"] as? String == "metadata.k")
    }
}
