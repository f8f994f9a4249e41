import Foundation
import PipelineTestSupport
import Testing

/// Issue 27 through the binary over HTTP, as it was found: many questions over one file, an
/// OpenAI-compatible server with uploads whose Files API answers 503 (the fault server), more
/// commands than `--concurrency`. Every run is bounded: a hang fails the test.
@Suite struct SharedUploadHTTPTests {
    static let commands = 60

    /// A directory with one file holding `content` under a name no other test uses (the server
    /// counts uploads per file name), and the input: `commands` questions over it.
    func setUp(content: String) throws -> (dir: URL, name: String, input: String) {
        let name = "paper-\(UUID().uuidString.prefix(8)).pdf"
        let dir = try temporaryDirectory(files: [name: content + UUID().uuidString])
        let input = (0..<Self.commands).map { #"{"id":"q\#($0)","model":"echo","prompt":"question \#($0)","files":["\#(name)"]}"# }
        return (dir, name, input.joined(separator: "\n"))
    }

    func run(_ base: URL, _ input: String, in dir: URL, concurrency: Int = 8) async throws -> PipelineRun {
        try await runPipeline(
            ["--provider", "openai", "--base-url", base.absoluteString, "--capabilities", "generation,uploads", "--concurrency", "\(concurrency)",
             "--max-attempts", "3", "--quiet"],
            stdin: input, currentDirectory: dir, timeout: .seconds(60))
    }

    func uploads(of name: String, at base: URL) async throws -> Int {
        (try await peerJSON(base.appendingPathComponent("stats")) as? [String: Any])?["files:\(name)"] as? Int ?? 0
    }

    /// The upload gets one 503, then two: every command succeeds, over one upload for all.
    @Test(arguments: [1, 2])
    func aRetriedSharedUploadEndsEveryCommand(_ failures: Int) async throws {
        let base = try Peers.faults.get()
        let (dir, name, input) = try setUp(content: "flaky-\(failures):")
        let test = self
        let run = try await test.run(base, input, in: dir)
        #expect(!run.timedOut, "the run hung (issue 27) after \(run.lines.count) results")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.records.count == Self.commands)
        #expect(run.records.allSatisfy { $0["status"] as? String == "succeeded" })
        #expect(try await uploads(of: name, at: base) == failures + 1, "one retried upload for every command")
    }

    /// The Files API is down: every command fails with `upload_failed`, after the attempts of one
    /// upload — the commands all waited for the same retried request, so the run takes the time
    /// of one command, not one retry time per `--concurrency` commands.
    @Test func aFilesAPIThatIsDownFailsEveryCommandAsFastAsOne() async throws {
        let base = try Peers.faults.get()
        let (dir, name, input) = try setUp(content: "down:")
        let test = self
        let run = try await test.run(base, input, in: dir)
        #expect(!run.timedOut, "the run hung (issue 27)")
        #expect(run.status == 1)
        #expect(run.records.count == Self.commands)
        #expect(run.records.allSatisfy { $0[path: "error.kind"] as? String == "upload_failed" })
        #expect(try await uploads(of: name, at: base) == 3, "three attempts in all, shared by every command")
    }

    /// The whole endpoint is down (nothing listens): 20 commands fail, as one does.
    @Test func anEndpointThatIsDownFailsEveryCommand() async throws {
        let (dir, _, input) = try setUp(content: "")
        let twenty = input.split(separator: "\n").prefix(20).map(String.init).joined(separator: "\n")
        let test = self
        let run = try await test.run(URL(string: "http://127.0.0.1:9/v1")!, twenty, in: dir, concurrency: 4)
        #expect(!run.timedOut, "the run hung (issue 27)")
        #expect(run.status == 1)
        #expect(run.records.count == 20)
        #expect(run.records.allSatisfy { $0[path: "error.kind"] as? String == "upload_failed" }, "\(run.records.first ?? [:])")
    }
}
