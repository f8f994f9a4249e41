#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// Helpers shared by the test targets: where things are, running the built `pipeline`
/// binary, temporary directories, and the Python peers in `.venv`.
public enum TestPaths {
    /// The package root, found from this file's path.
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The Python of `.venv` (set up by `pythonPeersProblem` on first use).
    public static let python = packageRoot.appendingPathComponent(".venv/bin/python")

    /// A child that exits before reading all its stdin must not kill the test process with
    /// SIGPIPE (the write fails with EPIPE instead); every helper that starts a process uses this.
    public static let pipesIgnored: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// The built `pipeline`: `swift test` puts test bundles and executables in one directory.
    public static var pipelineBinary: URL {
        _ = pipesIgnored
        var dir = Bundle.main.bundleURL
        if dir.pathExtension == "xctest" { dir.deleteLastPathComponent() }
        return dir.appendingPathComponent("pipeline")
    }

    /// Runs `Tests/Tools/setup-python-peers.sh` once per test process (it is idempotent and
    /// locked), so `swift test` on a fresh clone provisions `.venv` by itself; `nil` when it worked.
    public static let pythonPeersProblem: String? = {
        _ = pipesIgnored
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [packageRoot.appendingPathComponent("Tests/Tools/setup-python-peers.sh").path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        do { try process.run() } catch { return "cannot run setup-python-peers.sh: \(error)" }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus == 0 ? nil : "setup-python-peers.sh failed: \(text)"
    }()
}

/// What a finished `pipeline` run printed, and how it exited.
public struct PipelineRun: Sendable {
    public var stdout: String
    public var stderr: String
    public var status: Int32
    /// The run passed the `timeout` given to `runPipeline` and was killed (a hang).
    public var timedOut = false

    public var lines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

    /// Each stdout line parsed as a JSON object.
    public var records: [[String: Any]] {
        lines.map { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? ["unparsed": $0] }
    }
}

/// Runs blocking work (waiting on processes for minutes) on a thread of its own: an `async`
/// test that blocks holds one of the cooperative pool's few threads (two on two cores), and the
/// tasks of every other test running beside it wait for them.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Runs the built `pipeline` with `stdin`, capturing stdout, stderr and the exit status.
/// With `timeout`, a run still going after it is killed (SIGKILL) and comes back `timedOut`,
/// so a test of something that could hang fails instead.
///
/// The child is started, fed, drained and waited for on a thread of its own; the calling task
/// is suspended (it holds no thread of the cooperative pool) until the run has exited and both
/// its pipes are drained. Tests call this one; `runPipelineBlocking` is for threads of their own.
public func runPipeline(
    _ arguments: [String], stdin: String = "", currentDirectory: URL? = nil, environment: [String: String]? = nil, timeout: Duration? = nil
) async throws -> PipelineRun {
    try await onOwnThread {
        try runPipelineBlocking(arguments, stdin: stdin, currentDirectory: currentDirectory, environment: environment, timeout: timeout)
    }
}

/// `runPipeline` blocking its calling thread until the run ends (minutes, for some). Never
/// from async code: a blocked pool thread starves every other test's tasks on two cores.
@available(*, noasync, message: "blocks its thread until the run ends; use `try await runPipeline(...)`")
public func runPipelineBlocking(
    _ arguments: [String], stdin: String = "", currentDirectory: URL? = nil, environment: [String: String]? = nil, timeout: Duration? = nil
) throws -> PipelineRun {
    let process = Process()
    process.executableURL = TestPaths.pipelineBinary
    process.arguments = arguments
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    if let environment { process.environment = environment }
    let input = try ClosedOnExecPipe(), output = try ClosedOnExecPipe(), errors = try ClosedOnExecPipe()
    process.standardInput = input.reading
    process.standardOutput = output.writing
    process.standardError = errors.writing
    try process.run()
    // The child's ends are its own now (on 0, 1 and 2): closed here, so its output ends when it does.
    try input.reading.close()
    try output.writing.close()
    try errors.writing.close()
    let killed = Atomic<Bool>(false)
    let finished = DispatchSemaphore(value: 0)
    // Bounded always: a run that never ends (it waits for input that never ends, say) fails its
    // test instead of holding the whole suite until CI's own limit.
    let limit = timeout ?? .seconds(900)
    let pid = process.processIdentifier
    let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
    Thread.detachNewThread {
        if finished.wait(timeout: .now() + seconds) == .timedOut {
            killed.store(true, ordering: .relaxed)
            kill(pid, SIGKILL)
        }
    }
    // Written from another thread so a large input cannot deadlock against a full stdout pipe.
    // `write(contentsOf:)` throws where `write(_:)` would trap: a run that exits (or closes its
    // stdin) before reading all of it is what some tests check, not a crash of the test process.
    let writer = Thread {
        try? input.writing.write(contentsOf: Data(stdin.utf8))
        try? input.writing.close()
    }
    writer.start()
    // Stderr is drained on a thread of its own: read after stdout, a run writing more than a
    // pipe's 64 KB to stderr would block forever while we wait for stdout's end.
    let err = Mutex(Data())
    let drained = DispatchSemaphore(value: 0)
    let errorReader = Thread {
        let data = errors.reading.readDataToEndOfFile()
        err.withLock { $0 = data }
        drained.signal()
    }
    errorReader.start()
    let out = output.reading.readDataToEndOfFile()
    drained.wait()
    process.waitUntilExit()
    finished.signal()
    return PipelineRun(
        stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err.withLock { $0 }, as: UTF8.self), status: process.terminationStatus,
        timedOut: killed.load(ordering: .relaxed))
}

/// A pipe whose descriptors are closed in every process started later (`O_CLOEXEC` from the
/// start), so no process another test starts meanwhile inherits an end. `Pipe()` makes
/// inheritable descriptors: a peer server started while a run's stdin pipe was open kept its
/// write end for good, and the run, waiting for the end of its input, hung (found in CI). The
/// end a child is given as a standard stream is duplicated onto 0, 1 or 2 there, which stays
/// open across its exec; the parent closes its copy of that end once the child runs.
public struct ClosedOnExecPipe: Sendable {
    public let reading: FileHandle
    public let writing: FileHandle

    public init() throws {
        var fds: [Int32] = [-1, -1]
        guard Self.makePipe(&fds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        reading = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        writing = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
    }

    /// `pipe2(fds, O_CLOEXEC)` where the C library has it (glibc: found at run time, since the
    /// Glibc module leaves it out), else `pipe` then `FD_CLOEXEC` (a window of an instant).
    private static func makePipe(_ fds: inout [Int32]) -> Int32 {
        #if canImport(Glibc)
        typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
        if let symbol = dlsym(nil, "pipe2") {  // nil: RTLD_DEFAULT on glibc
            return unsafeBitCast(symbol, to: Pipe2.self)(&fds, O_CLOEXEC)
        }
        #endif
        guard pipe(&fds) == 0 else { return -1 }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return 0
    }
}

/// A fresh temporary directory holding `files` (relative path → contents).
public func temporaryDirectory(files: [String: String] = [:]) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    for (name, contents) in files {
        let url = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(contents.utf8).write(to: url)
    }
    return dir
}

extension Dictionary where Key == String, Value == Any {
    /// A value at a dotted path such as `telemetry.cache.id` or `responses.0.text`.
    public subscript(path path: String) -> Any? {
        var current: Any? = self
        for component in path.split(separator: ".") {
            if let index = Int(component), let array = current as? [Any] {
                current = index < array.count ? array[index] : nil
            } else {
                current = (current as? [String: Any])?[String(component)]
            }
        }
        return current
    }
}

/// Runs `executable` with stdout and stderr together, bounded by `timeout` (then it is
/// terminated and the status is -1). Output is read on a thread of its own, never on the
/// concurrency pool, so many of these at once cannot starve each other.
public func runProcess(_ executable: URL, _ arguments: [String], timeout: TimeInterval) throws -> (status: Int32, output: String) {
    _ = TestPaths.pipesIgnored
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let done = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in done.signal() }
    try process.run()
    let collected = OutputCollector()
    let reader = Thread {
        collected.set(output.fileHandleForReading.readDataToEndOfFile())
        collected.finished.signal()
    }
    reader.start()
    if done.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        _ = done.wait(timeout: .now() + 5)
        _ = collected.finished.wait(timeout: .now() + 5)
        return (-1, "timed out after \(Int(timeout)) s\n" + String(decoding: collected.get(), as: UTF8.self))
    }
    _ = collected.finished.wait(timeout: .now() + 10)
    return (process.terminationStatus, String(decoding: collected.get(), as: UTF8.self))
}

private final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    let finished = DispatchSemaphore(value: 0)
    func set(_ d: Data) { lock.withLock { data = d } }
    func get() -> Data { lock.withLock { data } }
}

/// SplitMix64 (Steele, Lea, Flood 2014): the same sequence for the same seed on every run,
/// so a generated test input can be replayed from its seed.
public struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Validates JSON lines against a schema in `Design/schema/` with a real JSON Schema validator
/// (`Tests/Tools/validate_jsonl.py`, jsonschema from PyPI): whether all are valid, and its report.
/// The validator runs and is waited for on a thread of its own, never on the cooperative pool.
public func validateJSONLines(_ jsonl: String, against schema: String) async throws -> (valid: Bool, report: String) {
    try await onOwnThread { try validateJSONLinesBlocking(jsonl, against: schema) }
}

@available(*, noasync, message: "blocks its thread until the validator exits; use `try await validateJSONLines(...)`")
private func validateJSONLinesBlocking(_ jsonl: String, against schema: String) throws -> (valid: Bool, report: String) {
    if let problem = TestPaths.pythonPeersProblem { return (false, problem) }
    let process = Process()
    process.executableURL = TestPaths.python
    process.arguments = [TestPaths.packageRoot.appendingPathComponent("Tests/Tools/validate_jsonl.py").path,
                         TestPaths.packageRoot.appendingPathComponent("Design/schema/\(schema)").path]
    let input = Pipe(), output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = output
    try process.run()
    try input.fileHandleForWriting.write(contentsOf: Data(jsonl.utf8))
    try input.fileHandleForWriting.close()
    let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus == 0, report)
}

/// The endpoint options among `arguments` (`--provider`, `--base-url`, `--api-key-env` with
/// their values, `--allow-insecure-http`): what `batch status|collect|cancel` must be given
/// again, since a job file never decides where the key goes (nor, without `--api-key-env`,
/// which provider's default key variable is sent).
public func endpointArguments(_ arguments: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < arguments.count {
        switch arguments[i] {
        case "--provider", "--base-url", "--api-key-env":
            out += arguments[i..<min(i + 2, arguments.count)]
            i += 2
        case "--allow-insecure-http":
            out.append(arguments[i])
            i += 1
        default:
            i += 1
        }
    }
    return out
}
