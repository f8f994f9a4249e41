import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// `pipeline batch` against `Tests/Tools/hostile_server.py`'s batch routes, for every provider:
/// a batch service whose job state, errors and result files attack the client (issue 21,
/// classes 1, 6 and 7). Every run is checked for the canary key on stdout and stderr.
@Suite struct HostileBatchTests {
    static let providers = ["openai", "anthropic", "gemini"]
    static let input = (0..<3).map { #"{"id":"c\#($0)","model":"m","prompt":"question \#($0)"}"# }.joined(separator: "\n") + "\n"

    /// The provider options that reach `route` on the hostile server.
    static func endpoint(_ provider: String, _ route: String) throws -> [String] {
        let origin = try Peers.hostile.get().deletingLastPathComponent().appendingPathComponent("r").appendingPathComponent(route)
        let base = provider == "openai" ? origin.appendingPathComponent("v1") : origin
        return ["--base-url", base.absoluteString, "--api-key-env", "CANARY_KEY"]
    }

    static var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["CANARY_KEY"] = HostileServerTests.canary
        return environment
    }

    /// Submits the three commands to `route` and returns the job file's path.
    func submit(_ provider: String, _ route: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let job = try temporaryDirectory().appendingPathComponent("job.json").path
        let capabilities = provider == "openai" ? ["--capabilities", "generation,batch"] : []
        let run = try await runPipeline(
            ["batch", "submit", "--job", job, "--provider", provider, "--quiet"] + capabilities + Self.endpoint(provider, route), stdin: Self.input,
            environment: Self.environment)
        expectNoLeak(run, sourceLocation: sourceLocation)
        #expect(run.status == 0, "\(provider) \(route) submit: \(run.stderr)", sourceLocation: sourceLocation)
        return job
    }

    func collect(_ provider: String, _ route: String, job: String) async throws -> PipelineRun {
        let run = try await runPipeline(["batch", "collect", job, "--quiet", "--provider", provider] + Self.endpoint(provider, route), environment: Self.environment)
        expectNoLeak(run)
        return run
    }

    func expectNoLeak(_ run: PipelineRun, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!HostileServerTests.leaks(run.stdout), "the key reached stdout: \(run.stdout.prefix(3000))", sourceLocation: sourceLocation)
        #expect(!HostileServerTests.leaks(run.stderr), "the key reached stderr: \(run.stderr.prefix(3000))", sourceLocation: sourceLocation)
    }

    func byID(_ run: PipelineRun) -> [String: [String: Any]] {
        Dictionary(run.records.map { ($0["id"] as? String ?? "?", $0) }, uniquingKeysWith: { a, _ in a })
    }

    // MARK: class 1: redaction before any cut

    /// An errored result whose message holds the key across the 300-character preview, and
    /// whose error type is the key: no piece of it reaches the record.
    @Test(arguments: providers)
    func anErroredResultNeverCarriesAPieceOfTheKey(provider: String) async throws {
        let job = try await submit(provider, "batch-errored-straddle")
        let run = try await collect(provider, "batch-errored-straddle", job: job)
        #expect(run.status == 1, "\(run.stderr)")
        let records = byID(run)
        #expect(records["c0"]?["status"] as? String == "failed", "\(run.stdout)")
        #expect(records["c1"]?["status"] as? String == "succeeded" && records["c2"]?["status"] as? String == "succeeded", "\(run.stdout)")
    }

    /// A job state the client does not know, carrying the key across the 40-character cut; and a
    /// failed job whose message carries it.
    @Test(arguments: providers)
    func jobStatesAndJobMessagesNeverCarryTheKey(provider: String) async throws {
        let job = try await submit(provider, "batch-state-key")
        let status = try await runPipeline(["batch", "status", job, "--provider", provider] + Self.endpoint(provider, "batch-state-key"), environment: Self.environment)
        expectNoLeak(status)
        #expect(status.status == 1 && status.stderr.contains("unknown"), "\(status.stderr)")
        let collected = try await collect(provider, "batch-state-key", job: job)
        #expect(collected.status == 1 && collected.stdout.isEmpty, "\(collected.stderr)")

        guard provider != "anthropic" else { return }  // a message batch has no failed state
        let failedJob = try await submit(provider, "batch-failed-key")
        let failed = try await collect(provider, "batch-failed-key", job: failedJob)
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(failed.records.count == 3 && failed.records.allSatisfy { $0[path: "error.details.code"] as? String == "batch_failed" }, "\(failed.stdout)")
    }

    // MARK: class 6: result files

    /// A cut line (naming its request) and a non-object line: that request fails precisely, the
    /// others are collected, exit 1.
    @Test(arguments: providers)
    func aMalformedResultLineFailsOnlyItsCommand(provider: String) async throws {
        let job = try await submit(provider, "batch-malformed")
        let run = try await collect(provider, "batch-malformed", job: job)
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.records.count == 3, "\(run.stdout) \(run.stderr)")
        let records = byID(run)
        #expect(records["c0"]?["status"] as? String == "succeeded" && records["c2"]?["status"] as? String == "succeeded", "\(run.stdout)")
        #expect(records["c1"]?["status"] as? String == "failed")
        #expect(records["c1"]?[path: "error.details.code"] as? String == "batch_result_malformed", "\(records["c1"] ?? [:])")
        #expect((records["c1"]?[path: "error.message"] as? String)?.contains("line 2") == true, "\(records["c1"] ?? [:])")
    }

    /// Two answers for one request: neither is taken; the command fails, the others succeed.
    @Test(arguments: providers)
    func aDuplicateCustomIDFailsItsCommand(provider: String) async throws {
        let job = try await submit(provider, "batch-duplicate")
        let run = try await collect(provider, "batch-duplicate", job: job)
        #expect(run.status == 1, "\(run.stderr)")
        let records = byID(run)
        #expect(records["c1"]?["status"] as? String == "failed")
        #expect(records["c1"]?[path: "error.details.code"] as? String == "batch_result_duplicate", "\(records["c1"] ?? [:])")
        #expect(records["c0"]?["status"] as? String == "succeeded" && records["c2"]?["status"] as? String == "succeeded", "\(run.stdout)")
    }

    // MARK: class 7: the job file does not decide where the key goes

    /// A job file pointing the key at another endpoint, or naming another key variable, is
    /// refused (exit 2) before anything is sent; the flags that made it work.
    @Test(arguments: providers)
    func aJobFileCannotSendTheKeyElsewhere(provider: String) async throws {
        let job = try await submit(provider, "batch-ok")
        let flags = try Self.endpoint(provider, "batch-ok")
        for action in ["status", "collect", "cancel"] {
            let withoutFlags = try await runPipeline(["batch", action, job], environment: Self.environment)
            #expect(withoutFlags.status == 2 && withoutFlags.stderr.contains("--base-url"), "\(action): \(withoutFlags.stderr)")
        }
        let ok = try await runPipeline(["batch", "collect", job, "--quiet", "--provider", provider] + flags, environment: Self.environment)
        #expect(ok.status == 0 && ok.records.count == 3, "\(ok.stderr)")

        // The job file edited: another origin, another variable, plain http elsewhere.
        let original = try String(contentsOfFile: job, encoding: .utf8)
        let base = flags[1]
        for (from, to) in [
            (#""base_url":"\#(base)""#, #""base_url":"http://192.0.2.1/v1""#),
            (#""api_key_env":"CANARY_KEY""#, #""api_key_env":"HOME""#),
        ] {
            #expect(original.contains(from), "\(original)")
            try original.replacingOccurrences(of: from, with: to).write(toFile: job, atomically: true, encoding: .utf8)
            let refused = try await runPipeline(["batch", "status", job, "--provider", provider] + flags, environment: Self.environment)
            #expect(refused.status == 2, "\(refused.stderr)")
            #expect(refused.stderr.contains("job file") && refused.stderr.contains("never decides"), "\(refused.stderr)")
        }
        try original.replacingOccurrences(of: #""allow_insecure_http":false"#, with: #""allow_insecure_http":true"#).write(toFile: job, atomically: true, encoding: .utf8)
        let insecure = try await runPipeline(["batch", "status", job, "--provider", provider] + flags, environment: Self.environment)
        #expect(insecure.status == 2 && insecure.stderr.contains("--allow-insecure-http"), "\(insecure.stderr)")
    }
}

/// Provider-shaped hostile streams and answers through the CLI, for every provider (issue 21
/// classes 1 and 8).
@Suite struct HostileStreamTests {
    func run(_ provider: String, _ route: String, _ extra: [String] = []) async throws -> PipelineRun {
        let run = try await runPipeline(
            ["--provider", provider, "--max-attempts", "1", "--timeout", "60", "--quiet"] + HostileBatchTests.endpoint(provider, route) + extra,
            stdin: #"{"id":"s","model":"m","prompt":"hi"}"#, environment: HostileBatchTests.environment)
        #expect(!HostileServerTests.leaks(run.stdout), "\(provider) \(route): the key reached stdout: \(run.stdout.prefix(3000))")
        #expect(!HostileServerTests.leaks(run.stderr), "\(provider) \(route): the key reached stderr: \(run.stderr.prefix(3000))")
        return run
    }

    /// The server echoes the key twice, each time split across 3-character deltas: no delta and
    /// no join of them holds the key, and the joined deltas equal the final text.
    @Test(arguments: HostileBatchTests.providers)
    func aKeySplitAcrossDeltasIsRedactedAsAStream(provider: String) async throws {
        let run = try await run(provider, "key-split-stream", ["--events"] + (provider == "openai" ? ["--capabilities", "generation,streaming"] : []))
        #expect(run.status == 0, "\(run.stderr)")
        let check = EventStreamCheck(run.stdout)
        #expect(check.problems.isEmpty, "\(check.problems)")
        let events = check.commands["s"] ?? []
        let deltas = events.filter { $0["type"] as? String == "text_delta" }.compactMap { $0["text"] as? String }
        #expect(deltas.count > 2, "\(run.stdout.prefix(2000))")
        let joined = deltas.joined()
        #expect(!HostileServerTests.leaks(joined), "the joined deltas hold the key: \(joined)")
        let expected = "the key <redacted> and again " + String(repeating: "filler ", count: 30) + "<redacted> end" + String(repeating: " tail", count: 30)
        #expect(joined == expected, "\(joined)")
        let result = events.last?["result"] as? [String: Any]
        #expect((result?["responses"] as? [[String: Any]])?.first?["text"] as? String == joined)
    }

    /// Issue 29 item 2, end to end: a server that echoes a placeholder key (`EMPTY`, `ollama`,
    /// `x`) in the answer's text and model gets its answer through unchanged, for every provider;
    /// a real-length key in the same place is redacted.
    @Test(arguments: HostileBatchTests.providers)
    func placeholderKeysNeverAlterAnswers(provider: String) async throws {
        let origin = try Peers.hostile.get().deletingLastPathComponent().appendingPathComponent("r").appendingPathComponent("key-model")
        let base = provider == "openai" ? origin.appendingPathComponent("v1") : origin
        for key in ["EMPTY", "ollama", "x", HostileServerTests.canary] {
            var environment = ProcessInfo.processInfo.environment
            environment["SOME_KEY"] = key
            let run = try await runPipeline(
                ["--provider", provider, "--base-url", base.absoluteString, "--api-key-env", "SOME_KEY", "--max-attempts", "1", "--quiet"],
                stdin: #"{"id":"p","model":"m","prompt":"hi"}"#, environment: environment)
            let response = (run.records.first?["responses"] as? [[String: Any]])?.first
            let expected = key == HostileServerTests.canary ? "hi <redacted>" : "hi " + key
            #expect(response?["text"] as? String == expected, "\(provider) \(key): \(run.stdout) \(run.stderr)")
            #expect(!HostileServerTests.leaks(run.stdout) && !HostileServerTests.leaks(run.stderr))
        }
    }

    /// Issue 21 class 8: an Anthropic stream without message_start, stop_reason or message_stop
    /// is a truncated stream (`stream_truncated`), never a success with zero usage.
    @Test func anAnthropicStreamWithoutStartOrStopIsTruncated() async throws {
        let run = try await run("anthropic", "anthropic-truncated", ["--events"])
        #expect(run.status == 1, "\(run.stdout)")
        let result = EventStreamCheck(run.stdout).commands["s"]?.last?["result"] as? [String: Any]
        #expect(result?["status"] as? String == "failed", "\(run.stdout)")
        // After text was streamed the engine reports it as an interrupted stream, naming the cause.
        #expect((result?[path: "error.message"] as? String)?.contains("without message_start and a stop_reason") == true, "\(run.stdout)")
    }

    /// Issue 21 class 8: a usage number beyond a double's range (1e400) is clamped like other
    /// absurd usage; the answer is not "not JSON".
    @Test func aUsageBeyondADoubleIsClamped() async throws {
        let run = try await run("openai", "usage=huge")
        #expect(run.status == 0, "\(run.stdout)")
        let record = run.records.first
        #expect(record?["status"] as? String == "succeeded", "\(run.stdout)")
        let prompt = record?[path: "usage.prompt_tokens"] as? Int
        #expect(prompt.map { (0...(1 << 53)).contains($0) } == true, "\(run.stdout)")
    }

    /// Issue 21 class 8: the file name in Gemini's upload answer is one path segment of the
    /// polling URL: `files/../../x` cannot climb out of `files/`.
    @Test func aGeminiFileNameIsOnePathSegmentWhenPolled() async throws {
        let file = try temporaryDirectory(files: ["a.txt": "upload me"]).appendingPathComponent("a.txt")
        let origin = try Peers.hostile.get().deletingLastPathComponent().appendingPathComponent("r").appendingPathComponent("upload-traversal")
        var configuration = GeminiConfiguration(baseURL: origin, apiKey: APIKey(HostileServerTests.canary), requestTimeout: 30)
        configuration.pollInterval = .milliseconds(1)
        let uploader = try #require(GeminiProvider.make(configuration) as any GenerationCapability as? any UploadsCapability)
        let reference = try await uploader.upload(FileUpload(path: file.path, mimeType: "text/plain"))
        #expect(reference.uri.hasSuffix("/v1beta/files/x"))
        #expect(GeminiConfiguration.filePath("files/../../x") == "files/..%2F..%2Fx")
        #expect(GeminiConfiguration.filePath("files/..") == nil && GeminiConfiguration.filePath("other/x") == nil)
    }
}
