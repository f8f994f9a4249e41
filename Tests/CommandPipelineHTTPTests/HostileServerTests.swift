import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import PipelineTestSupport
import Testing

/// The adapter and the CLI against `Tests/Tools/hostile_server.py`, a server that redirects,
/// echoes the key back, lies about lengths, drips, and sends absurd numbers. Every test
/// uses a random canary key and checks that no 8-character piece of it reaches any output.
@Suite(.serialized) struct HostileServerTests {
    static let canary = "sk-canary-" + (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max), radix: 36) }.joined()

    /// Whether `text` holds the canary or any 8-character piece of it, ignoring case, as is or
    /// once every JSON escape in it (`\uXXXX`, `\/`, however many backslashes deep) is decoded.
    static func leaks(_ text: String) -> Bool {
        let key = Array(canary.lowercased())
        return [text, unescaped(text)].contains { text in
            let text = text.lowercased()
            return (0...(key.count - 8)).contains { text.contains(String(key[$0..<$0 + 8])) }
        }
    }

    /// `text` with each `\uXXXX` (after any number of backslashes) turned into its character, and `\/` into `/`.
    static func unescaped(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        let scalars = Array(text.unicodeScalars)
        var i = 0
        while i < scalars.count {
            if scalars[i] == "\\" {
                var j = i
                while j < scalars.count && scalars[j] == "\\" { j += 1 }
                if j + 4 < scalars.count, scalars[j] == "u" || scalars[j] == "U",
                   let unit = UInt32(String(String.UnicodeScalarView(scalars[(j + 1)...(j + 4)])), radix: 16), let scalar = Unicode.Scalar(unit) {
                    out.append(scalar)
                    i = j + 5
                    continue
                }
                if j < scalars.count && scalars[j] == "/" {
                    out.append("/")
                    i = j + 1
                    continue
                }
            }
            out.append(scalars[i])
            i += 1
        }
        return String(out)
    }

    static func expectNoLeak(_ error: APIError, sourceLocation: SourceLocation = #_sourceLocation) {
        for text in [error.message, "\(error)", String(reflecting: error), error.underlying.map { "\($0)" } ?? "", error.code ?? ""] {
            #expect(!leaks(text), "the key leaked: \(text.prefix(2000))", sourceLocation: sourceLocation)
        }
    }

    func base(_ route: String? = nil) throws -> URL {
        let base = try Peers.hostile.get()
        guard let route else { return base }
        return base.deletingLastPathComponent().appendingPathComponent("r").appendingPathComponent(route).appendingPathComponent("v1")
    }

    func configuration(_ base: URL) -> OpenAIConfiguration {
        OpenAIConfiguration(baseURL: base, apiKey: APIKey(Self.canary), apiKeyVariable: "CANARY_KEY", capabilities: [.generation, .uploads, .streaming], requestTimeout: 30)
    }

    func provider(_ configuration: OpenAIConfiguration? = nil) throws -> any GenerationCapability {
        OpenAIProvider.make(try configuration ?? self.configuration(base()))
    }

    /// The error `route` ends in, through `generate` (or `stream`), bounded by `limit` seconds (a hang
    /// detector only: generous, so a loaded machine never turns a slow failure into a cancel).
    func failure(_ route: String, stream: Bool = false, provider: (any GenerationCapability)? = nil, limit: Double = 120, sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIError {
        let provider = try provider ?? self.provider()
        let request = GenerationRequest(model: route, parts: [.text("hi")])
        let task = Task { () async throws -> Void in
            if stream {
                for try await _ in (provider as! any StreamingCapability).stream(request) {}
            } else {
                _ = try await provider.generate(request)
            }
        }
        let guardTask = Task {
            try await Task.sleep(for: .seconds(limit))
            task.cancel()
        }
        defer { guardTask.cancel() }
        switch await task.result {
        case .success:
            Issue.record("\(route) succeeded", sourceLocation: sourceLocation)
            return APIError(.internal, "no failure")
        case .failure(let error as APIError):
            Self.expectNoLeak(error, sourceLocation: sourceLocation)
            return error
        case .failure(let error):
            Issue.record("\(route) threw \(error), not an APIError", sourceLocation: sourceLocation)
            return APIError(.internal, "\(error)")
        }
    }

    /// Requests that reached the redirect targets' sink port, and how many carried a key.
    func sinkStats() async throws -> (hits: Int, withKey: Int) {
        let base = try Peers.hostile.get()
        let (data, _) = try await URLSession.shared.data(from: base.appendingPathComponent("stats"))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Int])
        return (object["sink_hits"] ?? -1, object["sink_auth"] ?? -1)
    }

    // MARK: - Redirects

    static let redirectRoutes = [301, 302, 303, 307, 308].flatMap { status in
        ["cross-port", "cross-host", "same", "userinfo"].map { "redirect-\(status)-\($0)" }
    }

    /// A 2xx to a streaming request that is not an event stream (`ok` answers one JSON
    /// completion): one precise, final error, not three attempts at a "truncated" stream.
    @Test func aReplyThatIsNotAnEventStreamFailsOnce() async throws {
        let error = try await failure("ok", stream: true, limit: 120)
        #expect(error.code == "not_event_stream" && !error.retryable, "\(error)")
        #expect(error.message.contains("application/json") && error.message.contains("text/event-stream"), "\(error.message)")
    }

    @Test(arguments: redirectRoutes)
    func redirectsAreNeverFollowed(route: String) async throws {
        let before = try await sinkStats()
        let error = try await failure(route)
        let status = route.split(separator: "-")[1]
        #expect(error.kind == .providerError)
        #expect(!error.retryable, "a redirect answers the same way every time")
        #expect(error.code == "redirect")
        #expect(error.message.contains("HTTP \(status)"), "\(error.message)")
        #expect(error.message.contains("--base-url"), "the hint names the fix: \(error.message)")
        #expect(!error.message.contains("hunter2"), "userinfo of the Location is stripped: \(error.message)")
        #expect(error.message.contains("/v1/chat/completions"), "the Location is named: \(error.message)")
        #expect(try await sinkStats() == before, "nothing reached the redirect target")
    }

    @Test func redirectsAreNotFollowedWhenStreamingOrUploading() async throws {
        let before = try await sinkStats()
        let streamed = try await failure("redirect-307-cross-port", stream: true)
        #expect(streamed.code == "redirect" && !streamed.retryable, "\(streamed)")

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString).txt")
        try Data("upload me".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        for route in ["redirect-307-cross-port", "redirect-308-userinfo", "redirect-303-cross-port"] {
            let uploader = try provider(configuration(base(route))) as! any UploadsCapability
            do {
                _ = try await uploader.upload(FileUpload(path: file.path, mimeType: "text/plain"))
                Issue.record("an upload redirected by \(route) succeeded")
            } catch let error as APIError {
                Self.expectNoLeak(error)
                #expect(error.code == "redirect" && !error.retryable, "\(error)")
                #expect(!error.message.contains("hunter2"))
            }
        }
        #expect(try await sinkStats() == before, "nothing reached the redirect target")
    }

    // MARK: - The key in server text

    static let echoRoutes = ["echo-json-error", "echo-text-200", "echo-text-500", "echo-encoded"]
        + [1, 2, 5, 8, 9, 12, 20].flatMap { n in ["text-500", "text-200", "json-400"].map { "straddle-\(n)-\($0)" } }

    @Test(arguments: echoRoutes)
    func serverTextNeverCarriesTheKey(route: String) async throws {
        let error = try await failure(route)
        #expect(error.kind == .providerError)
        #expect(error.message.count < 1000, "server text is previewed, not quoted whole")
        if route.hasPrefix("echo-json") || route.hasPrefix("echo-text") {
            #expect(error.message.contains("Bearer <redacted>"), "the echo is still readable: \(error.message)")
        }
    }

    @Test(arguments: ["stream-echo-error", "stream-echo-garbage"])
    func streamPayloadsNeverCarryTheKey(route: String) async throws {
        let error = try await failure(route, stream: true)
        #expect(error.kind == .providerError)
        #expect(error.message.contains("Bearer <redacted>"), "the echo is still readable: \(error.message)")
    }

    // MARK: - Numbers from the server

    static let retryAfterRoutes = ["1e20", "inf", "nan", "-5", "99999999999", "far-future", "1e-320", "0x10"].map { "retry-after=\($0)" }
        + ["1e300", "99999999999999999999", "-1", "nan", "inf"].map { "retry-after-ms=\($0)" }

    @Test(arguments: retryAfterRoutes)
    func retryHintsFromTheServerNeverTrap(route: String) async throws {
        let error = try await failure(route)
        #expect(error.kind == .rateLimited)
        #expect(error.retryable)
        if let after = error.retryAfter {
            #expect(after >= .zero && after <= .seconds(3600), "\(after)")
        }
    }

    @Test(arguments: ["max", "max-total", "negative", "float", "bignum", "strings"])
    func absurdUsageIsClampedWhereItEnters(variant: String) async throws {
        let engine = try PipelineEngine(provider: try provider(), configuration: EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 1)))
        let plan = ExecutionPlan(calls: (0..<4).map { _ in APICall(model: "usage=\(variant)", parts: [.text("x")]) })
        let finalized = try #require(await engine.execute(PlannedCommand(id: "u", plan: plan)).success)
        let limit = 1 << 53
        for response in finalized.responses {
            let usage = response.usage
            for value in [usage.promptTokens, usage.completionTokens, usage.totalTokens, usage.cachedTokens] {
                #expect((0...limit).contains(value), "\(variant): \(usage)")
            }
        }
        #expect(finalized.usage.totalTokens >= 0)
    }

    // MARK: - Broken transfers

    @Test(arguments: ["lying-length", "chunked-cut"])
    func aBodyCutShortIsAConnectionLost(route: String) async throws {
        let error = try await failure(route)
        #expect(error.kind == .providerError)
        #expect(error.code == "connection_lost", "\(error)")
        #expect(error.retryable)
        #expect(error.message.contains("connection"), "\(error.message)")
    }

    @Test func aStreamCutMidChunkIsAConnectionLost() async throws {
        let error = try await failure("drop-mid-stream", stream: true)
        #expect(error.code == "connection_lost", "\(error)")
        #expect(error.retryable)
    }

    // MARK: - Deadlines and caps

    @Test func aSlowDripEndsAtTheDeadline() async throws {
        // One byte every 0.2 s keeps the idle timeout (30 s) from ever firing; the overall deadline ends it.
        var configuration = try configuration(base())
        configuration.resourceTimeout = 1
        let error = try await failure("slow-drip", provider: OpenAIProvider.make(configuration))
        #expect(error.kind == .timeout, "\(error)")
        #expect(error.retryable)
        #expect(error.message.contains("per-request deadline"), "\(error.message)")
    }

    @Test func aHugeBodyStopsAtTheCap() async throws {
        var configuration = try configuration(base())
        configuration.maxResponseBytes = 1 << 20
        let provider = OpenAIProvider.make(configuration)
        // Streamed, the same JSON answer is refused at its head, before its body: it is not an event stream.
        let streamed = try await failure("huge-body", stream: true, provider: provider)
        #expect(streamed.code == "not_event_stream" && !streamed.retryable, "\(streamed)")
        for (route, stream) in [("huge-body", false), ("huge-declared", false)] {
            let error = try await failure(route, stream: stream, provider: provider)
            #expect(error.kind == .providerError, "\(route): \(error)")
            #expect(error.code == "response_too_large", "\(route): \(error)")
            #expect(!error.retryable)
            #expect(error.message.contains("1048576-byte limit"), "\(error.message)")
        }
        // The default cap (64 MiB) refuses a declared terabyte at once.
        let declared = try await failure("huge-declared")
        #expect(declared.code == "response_too_large" && declared.message.contains("declares a 1000000000000-byte body"), "\(declared)")
    }

    @Test func uploadsMeetTheSameLimits() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString).txt")
        try Data("upload me".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        for (route, code) in [("huge-declared", "response_too_large"), ("chunked-cut", "connection_lost"), ("echo-text-500", nil)] {
            let uploader = try provider(configuration(base(route))) as! any UploadsCapability
            do {
                _ = try await uploader.upload(FileUpload(path: file.path, mimeType: "text/plain"))
                Issue.record("an upload to \(route) succeeded")
            } catch let error as APIError {
                Self.expectNoLeak(error)
                #expect(error.code == code, "\(route): \(error)")
            }
        }
    }

    // MARK: - The same through the CLI

    /// Route → expected `status`, `error.kind`, `error.details.code` of its record.
    typealias Expectation = (route: String, status: String, kind: String?, code: String?)
    static let cliExpectations: [Expectation] = {
        var all: [Expectation] = []
        all += redirectRoutes.map { Expectation($0, "failed", "provider_error", "redirect") }
        all += echoRoutes.map { Expectation($0, "failed", "provider_error", nil) }
        all += ["max", "max-total", "negative", "float", "bignum", "strings"].map { Expectation("usage=\($0)", "succeeded", nil, nil) }
        all.append(Expectation("lying-length", "failed", "provider_error", "connection_lost"))
        all.append(Expectation("chunked-cut", "failed", "provider_error", "connection_lost"))
        all.append(Expectation("huge-body", "failed", "provider_error", "response_too_large"))
        all.append(Expectation("huge-declared", "failed", "provider_error", "response_too_large"))
        return all
    }()

    /// `callTimeout` only where a route needs it (a per-call timeout on a loaded machine would
    /// fail the other routes); `--timeout 60` bounds every command in any case.
    func runCLI(_ expectations: [Expectation], callTimeout: String? = nil) async throws -> PipelineRun {
        let base = try Peers.hostile.get()
        let input = expectations.map { #"{"id":"\#($0.route)","model":"\#($0.route)","prompt":"hi"}"# }.joined(separator: "\n")
        var environment = ProcessInfo.processInfo.environment
        environment["CANARY_KEY"] = Self.canary
        return try await runPipeline(
            ["--provider", "openai", "--base-url", base.absoluteString, "--api-key-env", "CANARY_KEY", "--max-attempts", "1", "--timeout", "60",
             "--concurrency", "16"] + (callTimeout.map { ["--call-timeout", $0] } ?? []),
            stdin: input, environment: environment)
    }

    @Test func theCLINeverPrintsTheKeyWhateverTheServerDoes() async throws {
        let run = try await runCLI(Self.cliExpectations)
        check(run, Self.cliExpectations)
    }

    @Test func theCLIEndsASlowDripWithItsCallTimeout() async throws {
        let expected = [Expectation("slow-drip", "failed", "timeout", nil)]
        check(try await runCLI(expected, callTimeout: "1"), expected)
    }

    /// Each in its own run: a 429 without a usable hint pauses the engine's limiter (1 s,
    /// doubling), which would hold back every later command of one run.
    @Test func theCLIReadsNoNumberFromABadRetryAfter() async throws {
        for route in Self.retryAfterRoutes {
            let expected = [Expectation(route, "failed", "rate_limited", "rate_limit_exceeded")]
            check(try await runCLI(expected), expected)
        }
    }

    func check(_ run: PipelineRun, _ expectations: [Expectation], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!Self.leaks(run.stdout), "the key reached stdout", sourceLocation: sourceLocation)
        #expect(!Self.leaks(run.stderr), "the key reached stderr", sourceLocation: sourceLocation)
        #expect(run.status == (expectations.allSatisfy { $0.status == "succeeded" } ? 0 : 1), "\(run.stderr)", sourceLocation: sourceLocation)
        let records = Dictionary(run.records.map { ($0["id"] as? String ?? "?", $0) }, uniquingKeysWith: { a, _ in a })
        #expect(records.count == expectations.count, "one result per command: \(run.stderr)", sourceLocation: sourceLocation)
        for expected in expectations {
            guard let record = records[expected.route] else {
                Issue.record("no result for \(expected.route)")
                continue
            }
            #expect(record["status"] as? String == expected.status, "\(expected.route): \(record)")
            #expect(record[path: "error.kind"] as? String == expected.kind, "\(expected.route): \(record)")
            if let code = expected.code { #expect(record[path: "error.details.code"] as? String == code, "\(expected.route): \(record)") }
            if let total = record[path: "usage.total_tokens"] as? Int { #expect((0...(1 << 53)).contains(total), "\(expected.route): \(record)") }
        }
    }

    @Test func theCLIRefusesCredentialsInTheURLAndPlainHTTPOffThisMachine() async throws {
        let base = try Peers.hostile.get()
        var environment = ProcessInfo.processInfo.environment
        environment["CANARY_KEY"] = Self.canary
        let withUserinfo = base.absoluteString.replacingOccurrences(of: "http://", with: "http://user:hunter2-password@")
        let userinfo = try await runPipeline(
            ["--provider", "openai", "--base-url", withUserinfo, "--api-key-env", "CANARY_KEY"], stdin: #"{"model":"ok","prompt":"x"}"#, environment: environment)
        #expect(userinfo.status == 2)
        #expect(userinfo.stdout.isEmpty)
        #expect(userinfo.stderr.contains("user:password@"), "\(userinfo.stderr)")
        #expect(!userinfo.stderr.contains("hunter2"), "\(userinfo.stderr)")

        let remote = ["capabilities", "--provider", "openai", "--base-url", "http://192.0.2.1/v1", "--api-key-env", "CANARY_KEY"]
        let refused = try await runPipeline(remote, environment: environment)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--allow-insecure-http"), "\(refused.stderr)")
        #expect(!Self.leaks(refused.stderr))
        let allowed = try await runPipeline(remote + ["--allow-insecure-http"], environment: environment)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        let https = try await runPipeline(["capabilities", "--provider", "openai", "--base-url", "https://192.0.2.1/v1", "--api-key-env", "CANARY_KEY"], environment: environment)
        #expect(https.status == 0, "\(https.stderr)")
    }
}

/// The same canary discipline for every adapter: routes that put the key where nobody thinks
/// of it as server text (model, finish reason, error status, type or reason, a 200 error body,
/// a safety block message, a non-JSON 200), answered in each provider's own shape.
@Suite struct EveryProviderKeyTests {
    static let routes = ["key-model", "key-status", "key-error-200", "key-block", "key-nonjson-200", "key-escaped", "echo-json-error", "echo-text-200", "echo-text-500"]

    @Test(arguments: ["openai", "gemini", "anthropic"])
    func noProviderPrintsTheKeyWhateverTheServerSays(provider: String) async throws {
        let origin = try Peers.hostile.get().deletingLastPathComponent()
        var environment = ProcessInfo.processInfo.environment
        environment["CANARY_KEY"] = HostileServerTests.canary
        for route in Self.routes {
            let base = origin.appendingPathComponent("r").appendingPathComponent(route).absoluteString
            let run = try await runPipeline(
                ["--provider", provider, "--base-url", base, "--api-key-env", "CANARY_KEY", "--max-attempts", "1", "--timeout", "60", "--quiet"],
                stdin: #"{"id":"x","model":"m","prompt":"hi"}"#, environment: environment)
            #expect(!HostileServerTests.leaks(run.stdout), "\(provider) \(route): the key reached stdout: \(run.stdout)")
            #expect(!HostileServerTests.leaks(run.stderr), "\(provider) \(route): the key reached stderr: \(run.stderr)")
            #expect([0, 1].contains(run.status) && run.lines.count == 1, "\(provider) \(route): \(run.status) \(run.stderr)")
        }
    }

    /// The same routes (and the split-key stream) in events mode with a JSONL sink: no event
    /// line, no stderr line and no record handed to a sink carries the key (issue 21 class 1).
    @Test(arguments: ["openai", "gemini", "anthropic"])
    func eventsAndSinksNeverCarryTheKey(provider: String) async throws {
        let origin = try Peers.hostile.get().deletingLastPathComponent()
        var environment = ProcessInfo.processInfo.environment
        environment["CANARY_KEY"] = HostileServerTests.canary
        let dir = try temporaryDirectory()
        for route in Self.routes + ["key-split-stream", "key-escaped-stream"] {
            let sink = dir.appendingPathComponent("\(provider)-\(route).jsonl")
            let base = origin.appendingPathComponent("r").appendingPathComponent(route).absoluteString + (provider == "openai" ? "/v1" : "")
            let run = try await runPipeline(
                ["--provider", provider, "--base-url", base, "--api-key-env", "CANARY_KEY", "--max-attempts", "1", "--timeout", "60", "--events",
                 "--sink", "jsonl:\(sink.path)"] + (provider == "openai" ? ["--capabilities", "generation,streaming"] : []),
                stdin: #"{"id":"x","model":"m","prompt":"hi"}"#, environment: environment)
            let delivered = (try? String(contentsOf: sink, encoding: .utf8)) ?? ""
            #expect(!HostileServerTests.leaks(run.stdout), "\(provider) \(route): the key reached an event: \(run.stdout.prefix(2000))")
            #expect(!HostileServerTests.leaks(run.stderr), "\(provider) \(route): the key reached stderr: \(run.stderr.prefix(2000))")
            #expect(!HostileServerTests.leaks(delivered), "\(provider) \(route): the key reached the sink: \(delivered.prefix(2000))")
            #expect([0, 1].contains(run.status) && delivered.split(separator: "\n").count == 1, "\(provider) \(route): \(run.status) \(run.stderr)")
        }
    }
}
