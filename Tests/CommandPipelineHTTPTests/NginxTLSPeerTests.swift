import Foundation
import PipelineTestSupport
import Synchronization
import Testing

/// nginx (the Debian package) as a TLS reverse proxy in front of the peer servers, and the CLI
/// through it with `--ca-file`: the own transport's TLS against a production TLS server it did
/// not write, in front of servers nobody here wrote. `https://127.0.0.1:PORT/NAME/…` goes to
/// FakeAI (OpenAI, whole and streamed), llmock (Gemini; Anthropic from the echoing llmock) and
/// the fault server (an OpenAI upload), unbuffered both ways. The certificate comes from a CA
/// made at start (`Tests/Tools/nginx_tls_front.py`, which also stops the nginx it started when
/// this process ends). Every blocking run is on a thread of its own, never the cooperative pool.
@Suite(.serialized)
struct NginxTLSPeerTests {
    static let key = "sk-nginx-tls-test-key-0022"

    /// The front's `https://127.0.0.1:PORT` and the CA that signed its certificate.
    static let front: Result<(origin: URL, ca: URL), Peers.PeerError> = {
        func origin(_ name: String, _ peer: Result<URL, Peers.PeerError>) -> Result<String, Peers.PeerError> {
            peer.flatMap { url in
                guard let host = url.host, let port = url.port else { return .failure(Peers.PeerError(description: "\(name): no port in \(url)")) }
                return .success("\(name)=http://\(host):\(port)")
            }
        }
        let upstreams: [String]
        do {
            upstreams = try [
                origin("fakeai", Peers.fakeAI).get(), origin("llmock", Peers.llmock).get(), origin("anthropic", Peers.llmockAnthropic).get(),
                origin("faults", Peers.faults).get(),
            ]
        } catch { return .failure(error as? Peers.PeerError ?? Peers.PeerError(description: "\(error)")) }
        let workdir = FileManager.default.temporaryDirectory.appendingPathComponent("nginx-tls-\(UUID().uuidString)")
        do { try FileManager.default.createDirectory(at: workdir, withIntermediateDirectories: true) } catch {
            return .failure(Peers.PeerError(description: "nginx TLS front: \(error)"))
        }
        let process = Process()
        process.executableURL = TestPaths.python
        process.arguments = [TestPaths.packageRoot.appendingPathComponent("Tests/Tools/nginx_tls_front.py").path, workdir.path] + upstreams
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        do { try process.run() } catch { return .failure(Peers.PeerError(description: "nginx TLS front: cannot run its launcher: \(error)")) }
        // Open for the life of this process: the launcher stops nginx when it closes.
        lifeline.withLock { $0 = input.fileHandleForWriting }
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let words = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ", maxSplits: 2)
        guard words.count == 3, words[0] == "PORT", let port = Int(words[1]) else {
            return .failure(Peers.PeerError(description: "nginx TLS front did not start: \(String(decoding: line, as: UTF8.self))"))
        }
        return .success((URL(string: "https://127.0.0.1:\(port)")!, URL(fileURLWithPath: String(words[2]))))
    }()

    private static let lifeline = Mutex<FileHandle?>(nil)

    /// `pipeline` with `arguments`, the key in `NGINX_TEST_KEY`, trusting the front's CA unless told not to.
    static func run(_ arguments: [String], _ input: String, caFile: Bool = true, in directory: URL? = nil) async throws -> PipelineRun {
        let (_, ca) = try front.get()
        var environment = ProcessInfo.processInfo.environment
        environment["NGINX_TEST_KEY"] = key
        environment["GEMINI_API_KEY"] = key
        environment["COMMANDPIPELINE_HTTP_TRANSPORT"] = nil
        let all = arguments + ["--api-key-env", "NGINX_TEST_KEY"] + (caFile ? ["--ca-file", ca.path] : [])
        let settled = environment
        let run = try await runPipeline(all, stdin: input + "\n", currentDirectory: directory, environment: settled, timeout: .seconds(240))
        #expect(!run.timedOut, "the run did not end within 240 s: \(run.stderr)")
        #expect(!(run.stdout + run.stderr).contains(key), "the key leaked into the output")
        return run
    }

    static func base(_ path: String) throws -> String { try front.get().origin.absoluteString + path }

    static func deltas(_ check: EventStreamCheck, _ id: String) -> String {
        (check.commands[id] ?? []).filter { $0["type"] as? String == "text_delta" }.compactMap { $0["text"] as? String }.joined()
    }

    @Test func theOpenAIAdapterThroughNginxWholeAndStreamed() async throws {
        let base = try Self.base("/fakeai/v1")
        let whole = try await Self.run(
            ["--provider", "openai", "--base-url", base, "--concurrency", "4", "--quiet"],
            (0..<8).map { #"{"id":"w\#($0)","model":"gpt-4o-mini","prompt":"Say hello \#($0)"}"# }.joined(separator: "\n"))
        #expect(whole.status == 0, "\(whole.stderr)")
        #expect(whole.records.count == 8)
        for record in whole.records {
            #expect(record["status"] as? String == "succeeded", "\(record)")
            #expect((record[path: "usage.total_tokens"] as? Int ?? 0) > 0, "\(record)")
        }

        let streamed = try await Self.run(
            ["--provider", "openai", "--base-url", base, "--capabilities", "streaming", "--events", "--quiet"],
            #"{"id":"s","model":"gpt-4o-mini","prompt":"Tell me a short story about a lighthouse."}"#)
        #expect(streamed.status == 0, "\(streamed.stderr)")
        let check = EventStreamCheck(streamed.stdout)
        #expect(check.problems.isEmpty, "\(check.problems)")
        #expect(check.types("s").last == "command_succeeded", "\(check.types("s"))")
        let pieces = (check.commands["s"] ?? []).filter { $0["type"] as? String == "text_delta" }
        #expect(pieces.count > 1, "FakeAI streams in pieces, and nginx (unbuffered) passes them on")
        #expect(Self.deltas(check, "s") == check.result("s")?[path: "responses.0.text"] as? String)
    }

    @Test func anthropicAndGeminiThroughNginx() async throws {
        let anthropic = try Self.base("/anthropic/anthropic")
        let whole = try await Self.run(
            ["--provider", "anthropic", "--base-url", anthropic, "--capabilities", "generation,streaming", "--quiet"],
            #"{"id":"a","model":"claude-sonnet-4-6","prompt":"Hello there","system":"Be terse."}"#)
        #expect(whole.status == 0, "\(whole.stderr)")
        #expect(whole.records.first?[path: "responses.0.text"] as? String == "Hello! You said: Hello there", "\(whole.stdout)")
        let streamed = try await Self.run(
            ["--provider", "anthropic", "--base-url", anthropic, "--capabilities", "generation,streaming", "--events", "--quiet"],
            #"{"id":"a","model":"claude-sonnet-4-6","prompt":"Hello there"}"#)
        #expect(streamed.status == 0, "\(streamed.stderr)")
        #expect(Self.deltas(EventStreamCheck(streamed.stdout), "a") == "Hello! You said: Hello there", "\(streamed.stdout)")

        let mock = try LLMock.start()
        let model = "gemini-nginx-\(UUID().uuidString.prefix(6))"
        try await mock.script(model: model, [["type": "reply", "text": "one two three four"], ["type": "reply", "text": "five six seven"]])
        let gemini = try Self.base("/llmock/gemini")
        let geminiWhole = try await Self.run(["--provider", "gemini", "--base-url", gemini, "--quiet"], #"{"id":"g","model":"\#(model)","prompt":"Count"}"#)
        #expect(geminiWhole.status == 0, "\(geminiWhole.stderr)")
        #expect(geminiWhole.records.first?[path: "responses.0.text"] as? String == "one two three four", "\(geminiWhole.stdout)")
        let geminiStreamed = try await Self.run(
            ["--provider", "gemini", "--base-url", gemini, "--events", "--quiet"], #"{"id":"g","model":"\#(model)","prompt":"Count"}"#)
        #expect(geminiStreamed.status == 0, "\(geminiStreamed.stderr)")
        #expect(Self.deltas(EventStreamCheck(geminiStreamed.stdout), "g") == "five six seven", "\(geminiStreamed.stdout)")
        // Both went through nginx to llmock: it journaled them.
        #expect(try await mock.requests(model: model).count == 2)
    }

    /// An OpenAI upload (multipart, streamed from the file) through nginx to the fault server's
    /// Files API, then the question over it.
    @Test func anUploadThroughNginx() async throws {
        let name = "nginx-\(UUID().uuidString.prefix(8)).txt"
        var generator = SeededRandom(seed: 2222)
        let text = (0..<60_000).map { _ in "line \(UInt32.random(in: 0...UInt32.max, using: &generator))\n" }.joined()
        let dir = try temporaryDirectory(files: [name: text])
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try await Self.run(
            ["--provider", "openai", "--base-url", try Self.base("/faults/v1"), "--capabilities", "generation,uploads", "--max-attempts", "1", "--quiet"],
            #"{"id":"u","model":"echo","prompt":"What is in the file?","files":["\#(name)"]}"#, in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let record = try #require(run.records.first, "\(run.stderr)")
        #expect(record["status"] as? String == "succeeded", "\(record)")
        #expect(record[path: "telemetry.uploads.performed"] as? Int == 1, "\(record)")
        let stats = try await peerJSON(try Peers.faults.get().appendingPathComponent("stats")) as? [String: Any]
        #expect(stats?["files:\(name)"] as? Int == 1, "the fault server received the upload once: \(String(describing: stats))")
    }

    /// Without `--ca-file` the front's certificate (from a CA only the test knows) is refused:
    /// a precise `tls_failed`, not retried, and the key never sent.
    @Test func withoutTheCAFileNginxsCertificateIsRefused() async throws {
        let run = try await Self.run(
            ["--provider", "openai", "--base-url", try Self.base("/fakeai/v1"), "--quiet"], #"{"id":"x","model":"gpt-4o-mini","prompt":"hi"}"#,
            caFile: false)
        let record = try #require(run.records.first, "\(run.stderr)")
        #expect(record["status"] as? String == "failed")
        #expect(record[path: "error.details.code"] as? String == "tls_failed", "\(record)")
        #expect(record[path: "error.retryable"] as? Bool == false, "\(record)")
        #expect((record[path: "error.message"] as? String)?.contains("127.0.0.1") == true, "\(record)")
    }
}
