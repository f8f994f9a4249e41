#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CommandPipeline
import Foundation
import Synchronization
import Testing

/// Files are opened once, checked on the descriptor, read off the concurrency pool, and
/// deleted (when ephemeral) only after success inside an explicit files root.
@Suite struct FileAccessTests {
    func upload(_ path: String, engine: PipelineEngine, ephemeral: Bool = false, model: String = "mock") async -> Result<FinalizedCommand, APIError> {
        await engine.execute(PlannedCommand(
            id: "f", plan: ExecutionPlan(calls: [APICall(model: model, parts: [.filePlaceholder(FilePlaceholder(path: path, ephemeral: ephemeral)), .text("q")])])))
    }

    func engine(root: URL? = nil, maximumFileBytes: Int = FileResolver.defaultMaximumFileBytes, failing: Set<String> = [], timeout: Duration? = nil) throws -> PipelineEngine {
        try PipelineEngine(
            provider: MockProvider.make(MockConfiguration(failingModels: failing)),
            configuration: EngineConfiguration(fileRoot: root?.path, maximumFileBytes: maximumFileBytes, retryPolicy: .none, commandTimeout: timeout))
    }

    @Test func aFIFOIsRefusedWithoutWaitingForAWriter() async throws {
        let dir = try temporaryDirectory()
        let fifo = dir.appendingPathComponent("pipe").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // Watchdog: should the open block, a writer arrives after 10 s and the upload "succeeds" — failing the test.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(10))
            let fd = open(fifo, O_WRONLY)
            if fd >= 0 { close(fd) }
        }
        let result = await upload(fifo, engine: try engine())
        watchdog.cancel()
        let error = try #require(result.failure)
        #expect(error.kind == .invalidCommand)
        #expect(error.message.contains("FIFO"))
        #expect(error.path == "plan.calls[0].parts[0].path")
    }

    @Test func aDirectoryAndAFileOverTheLimitAreRefused() async throws {
        let dir = try temporaryDirectory(files: ["sub/a.txt": "a", "big.txt": String(repeating: "x", count: 100)])
        let directory = try #require(await upload(dir.appendingPathComponent("sub").path, engine: engine()).failure)
        #expect(directory.kind == .invalidCommand && directory.message.contains("a directory"))
        let big = try #require(await upload(dir.appendingPathComponent("big.txt").path, engine: engine(maximumFileBytes: 99)).failure)
        #expect(big.kind == .invalidCommand && big.message.contains("more than the limit of 99 bytes"))
        #expect(try await upload(dir.appendingPathComponent("big.txt").path, engine: engine(maximumFileBytes: 100)).success != nil)
    }

    @Test func aMissingFileIsAnUploadFailureNamingIt() async throws {
        let dir = try temporaryDirectory()
        let error = try #require(await upload(dir.appendingPathComponent("nope.pdf").path, engine: engine()).failure)
        #expect(error.kind == .uploadFailed)
        #expect(error.message.contains("nope.pdf"))
    }

    @Test func aLinkLeadingOutOfTheRootIsRefused() async throws {
        let outside = try temporaryDirectory(files: ["secret.txt": "secret"])
        let root = try temporaryDirectory(files: ["inside.txt": "inside"])
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("link").path, withDestinationPath: outside.appendingPathComponent("secret.txt").path)
        let error = try #require(await upload("link", engine: engine(root: root)).failure)
        #expect(error.kind == .invalidCommand)
        #expect(error.message.contains("leaves the files root"))
        #expect(try await upload("inside.txt", engine: engine(root: root)).success != nil)
    }

    /// A thread swaps `target` between a file inside the root and a link to a secret outside it
    /// while commands upload `target`: the secret's bytes are never read.
    @Test func swappingALinkDuringTheRunNeverEscapesTheRoot() async throws {
        let outside = try temporaryDirectory(files: ["secret.txt": "the secret"])
        let root = try temporaryDirectory(files: ["target": "inside"])
        let secretURI = "mock://files/" + SHA256.hex(Array("the secret".utf8))
        let target = root.appendingPathComponent("target").path
        let stop = Atomic<Bool>(false)
        let swapper = Thread {
            var flip = false
            while !stop.load(ordering: .relaxed) {
                let staging = target + ".next"
                unlink(staging)
                if flip {
                    symlink(outside.appendingPathComponent("secret.txt").path, staging)
                } else {
                    _ = FileManager.default.createFile(atPath: staging, contents: Data("inside".utf8))
                }
                rename(staging, target)
                flip.toggle()
            }
        }
        swapper.start()
        let engine = try engine(root: root)
        var escaped = 0, succeeded = 0
        for _ in 0..<1_000 {
            let result = await upload("target", engine: engine)
            if case .success(let finalized) = result {
                succeeded += 1
                if finalized.responses.first?.text.contains(secretURI) == true { escaped += 1 }
            }
            if let error = result.failure { #expect([.invalidCommand, .uploadFailed].contains(error.kind), "\(error)") }
        }
        stop.store(true, ordering: .relaxed)
        #expect(escaped == 0)
        #expect(succeeded > 0, "some uploads saw the inside file")
    }

    @Test func ephemeralFilesAreDeletedOnlyAfterSuccessInsideAFilesRoot() async throws {
        let root = try temporaryDirectory(files: ["ok.txt": "a", "failing.txt": "b", "unconfined.txt": "c"])
        func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: root.appendingPathComponent(name).path) }

        #expect(try await upload("ok.txt", engine: engine(root: root), ephemeral: true).success != nil)
        #expect(!exists("ok.txt"), "deleted after success inside the root")

        #expect(try await upload("failing.txt", engine: engine(root: root, failing: ["down"]), ephemeral: true, model: "down").failure != nil)
        #expect(exists("failing.txt"), "a failed command keeps its file")

        #expect(try await upload(root.appendingPathComponent("unconfined.txt").path, engine: engine(), ephemeral: true).success != nil)
        #expect(exists("unconfined.txt"), "without a files root nothing is deleted")
    }

    @Test func anEphemeralFileReplacedAfterItWasReadIsKept() async throws {
        let root = try temporaryDirectory(files: ["a.txt": "original"])
        let resolver = FileResolver(confinedTo: root.path)
        let file = try resolver.open("a.txt").get()
        let path = root.appendingPathComponent("a.txt").path
        try FileManager.default.removeItem(atPath: path)
        _ = FileManager.default.createFile(atPath: path, contents: Data("someone else's".utf8))
        guard case .failure(let refusal) = resolver.removeEphemeral(file) else {
            Issue.record("a replaced file was deleted")
            return
        }
        #expect(refusal.message.contains("replaced"))
        #expect(FileManager.default.fileExists(atPath: path))
    }

    /// A 2 GiB sparse file: reading it runs off the concurrency pool and stops when the command's deadline cancels it.
    @Test func readingAHugeFileIsCancelledByTheCommandDeadline() async throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("sparse.bin").path
        let fd = open(path, O_WRONLY | O_CREAT, 0o600)
        #expect(ftruncate(fd, off_t(FileResolver.defaultMaximumFileBytes)) == 0)
        close(fd)
        let result = await upload(path, engine: try engine(timeout: .milliseconds(200)))
        #expect(result.failure?.kind == .timeout)
    }

    @Test func aDeviceIsRefusedByItsName() async throws {
        let error = try #require(await upload("/dev/null", engine: engine()).failure)
        #expect(error.kind == .invalidCommand && error.message.contains("character device"), "\(error)")
    }

    @Test func aFileThatGrowsOrShrinksWhileReadIsRefused() async throws {
        let dir = try temporaryDirectory(files: ["a.txt": "12345"])
        let path = dir.appendingPathComponent("a.txt").path
        let grown = try OpenedFile.open(path).get()
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("6789".utf8))
        try handle.close()
        await #expect(throws: OpenedFile.Failure.self) { _ = try await grown.contents() }
        let shrunk = try OpenedFile.open(path).get()
        #expect(truncate(path, 2) == 0)
        await #expect(throws: OpenedFile.Failure.self) { _ = try await shrunk.contents() }
        let whole = try OpenedFile.open(path).get()
        #expect(try await whole.contents() == Data("12".utf8))
    }
}
