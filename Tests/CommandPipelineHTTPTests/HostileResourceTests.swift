import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import PipelineTestSupport
import Testing

/// Resources a hostile server or an unlucky machine can exhaust: memory through a compressed
/// answer (a gzip bomb, on every path: our HTTP/1.1, URLSession, uploads, HTTPS) and file
/// descriptors (a low `ulimit -n` under a high `--concurrency`).
@Suite(.serialized) struct HostileResourceTests {
    static let bombRoutes = ["gzip-bomb", "gzip-bomb-stream", "gzip-bomb-error", "gzip-small"]

    func provider(_ base: URL) -> any GenerationCapability {
        OpenAIProvider.make(
            OpenAIConfiguration(
                baseURL: base, apiKey: APIKey(HostileServerTests.canary), apiKeyVariable: "CANARY_KEY",
                capabilities: [.generation, .uploads, .streaming], requestTimeout: 60))
    }

    func routed(_ route: String) throws -> URL {
        let base = try Peers.hostile.get()
        return base.deletingLastPathComponent().appendingPathComponent("r").appendingPathComponent(route).appendingPathComponent("v1")
    }

    static func expectRefused(_ error: any Error, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let error = error as? APIError else {
            Issue.record("\(what): \(error) is not an APIError", sourceLocation: sourceLocation)
            return
        }
        #expect(error.code == "response_compressed", "\(what): \(error)", sourceLocation: sourceLocation)
        #expect(!error.retryable, "\(what)", sourceLocation: sourceLocation)
        #expect(error.message.contains("Content-Encoding: gzip"), "\(what): \(error.message)", sourceLocation: sourceLocation)
    }

    /// Our HTTP/1.1 path (generate, stream) and URLSession (uploads) alike: a compressed answer
    /// is refused with a precise error, whatever it would inflate to.
    @Test(arguments: bombRoutes)
    func aCompressedAnswerIsRefusedOnEveryPath(route: String) async throws {
        let provider = provider(try Peers.hostile.get())
        let request = GenerationRequest(model: route, parts: [.text("hi")])
        do {
            _ = try await provider.generate(request)
            Issue.record("\(route): generate succeeded")
        } catch { Self.expectRefused(error, "generate \(route)") }
        do {
            for try await _ in (provider as! any StreamingCapability).stream(request) {}
            Issue.record("\(route): stream succeeded")
        } catch { Self.expectRefused(error, "stream \(route)") }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bomb-\(UUID().uuidString).txt")
        try Data("upload me".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        do {
            _ = try await (self.provider(try routed(route)) as! any UploadsCapability).upload(FileUpload(path: file.path, mimeType: "text/plain"))
            Issue.record("\(route): upload succeeded")
        } catch { Self.expectRefused(error, "upload \(route)") }
    }

    @Test func everyRequestAsksForAnUncompressedAnswer() throws {
        var request = URLRequest(url: URL(string: "https://example.com/v1")!)
        request.setValue("gzip, br", forHTTPHeaderField: "Accept-Encoding")
        #expect(HTTPClient.uncompressed(request).value(forHTTPHeaderField: "Accept-Encoding") == "identity")
        // The own transport writes it as it serialises the request, the caller's value dropped.
        let head = String(decoding: try HTTP1Transport.serialize(request, url: request.url!, host: "example.com", port: 443, defaultPort: 443), as: UTF8.self)
        #expect(head.components(separatedBy: "\r\n").filter { $0.lowercased().hasPrefix("accept-encoding:") } == ["Accept-Encoding: identity"], "\(head)")
        #expect(HTTPClient.refusedEncoding(["content-encoding": "gzip"]) == "gzip")
        #expect(HTTPClient.refusedEncoding(["content-encoding": "identity, gzip"]) == "identity, gzip")
        #expect(HTTPClient.refusedEncoding(["content-encoding": " Identity "]) == nil)
        #expect(HTTPClient.refusedEncoding([:]) == nil)
    }

    // MARK: - The CLI's memory under a bomb

    /// The CLI run under a Python wrapper that reports its maximum resident set size.
    func runMeasured(_ base: URL, route: String, transport: String?, prefix: [String] = []) throws -> (records: [[String: Any]], maxRSSKiB: Int, output: String) {
        let dir = try temporaryDirectory(files: ["in.jsonl": #"{"id":"bomb","model":"\#(route)","prompt":"hi"}"# + "\n"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let wrapper = dir.appendingPathComponent("rss.py")
        try Data(
            """
            import resource, subprocess, sys
            with open(sys.argv[1]) as stdin, open(sys.argv[2], "w") as stdout:
                subprocess.run(sys.argv[3:], stdin=stdin, stdout=stdout)
            print("MAXRSS", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            """.utf8
        ).write(to: wrapper)
        var command = prefix + ["env", "CANARY_KEY=\(HostileServerTests.canary)"]
        if let transport { command.append("COMMANDPIPELINE_HTTP_TRANSPORT=\(transport)") }
        command += [
            TestPaths.python.path, wrapper.path, dir.appendingPathComponent("in.jsonl").path, dir.appendingPathComponent("out.jsonl").path,
            TestPaths.pipelineBinary.path, "--provider", "openai", "--base-url", base.absoluteString, "--api-key-env", "CANARY_KEY",
            "--max-attempts", "1", "--quiet",
        ]
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), command, timeout: 300)
        let out = (try? String(contentsOf: dir.appendingPathComponent("out.jsonl"), encoding: .utf8)) ?? ""
        let records = out.split(separator: "\n").map { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? ["unparsed": String($0)] }
        let rss = run.output.split(separator: "\n").last { $0.hasPrefix("MAXRSS ") }.flatMap { Int($0.dropFirst(7)) } ?? -1
        return (records, rss, run.output)
    }

    /// About 1 MB on the wire that inflate to 1 GiB (16 times the body cap): the run fails the command precisely and
    /// its memory stays far below the bomb (URLSession once held the whole of it).
    func expectBounded(_ base: URL, transport: String?, prefix: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws {
        for route in ["gzip-bomb", "gzip-bomb-stream", "gzip-bomb-error"] {
            let run = try runMeasured(base, route: route, transport: transport, prefix: prefix)
            #expect(run.records.count == 1, "\(route): \(run.output)", sourceLocation: sourceLocation)
            #expect(run.records.first?[path: "error.details.code"] as? String == "response_compressed", "\(route) \(transport ?? "http1"): \(run.records)", sourceLocation: sourceLocation)
            #expect(run.maxRSSKiB > 0 && run.maxRSSKiB < 512 << 10, "\(route) \(transport ?? "http1"): max RSS \(run.maxRSSKiB) KiB", sourceLocation: sourceLocation)
            #expect(!HostileServerTests.leaks(run.output), sourceLocation: sourceLocation)
        }
    }

    @Test func aGzipBombOverPlainHTTPKeepsMemoryBounded() throws {
        try expectBounded(try Peers.hostile.get(), transport: nil)
        try expectBounded(try Peers.hostile.get(), transport: "urlsession")
    }

    /// Whether this process may make a private mount namespace (root, or a permissive sandbox):
    /// the HTTPS test trusts its throwaway CA by mounting it over the system's bundle there
    /// (libcurl under URLSession reads only that file), never touching the real one.
    static let canTrustAThrowawayCA: Bool = {
        (try? runProcess(URL(fileURLWithPath: "/usr/bin/unshare"), ["-m", "true"], timeout: 30))?.status == 0
    }()

    @Test(.enabled(if: canTrustAThrowawayCA, "needs `unshare -m` (a private mount namespace) to trust a throwaway CA"))
    func aGzipBombOverHTTPSKeepsMemoryBounded() throws {
        let (base, ca) = try Peers.hostileTLS.get()
        let bundle = "/etc/ssl/certs/ca-certificates.crt"
        let prefix = ["unshare", "-m", "/bin/bash", "-c", "mount --bind \"$0\" \(bundle) && exec \"$@\"", ca.path]
        // First an honest answer over this TLS, so a failure below is the bomb's, not the setup's.
        let ok = try runMeasured(base, route: "ok", transport: nil, prefix: prefix)
        #expect(ok.records.first?["status"] as? String == "succeeded", "\(ok.records) \(ok.output)")
        try expectBounded(base, transport: nil, prefix: prefix)
    }

    // MARK: - The canary sweep: hooks and --stats-json

    /// Every route that echoes the key, with a `--hook-exec` program that logs every question
    /// it gets (the outcomes it hears) and `--stats-json`: the key reaches none of stdout,
    /// stderr, the stats file, or the hook program.
    @Test(arguments: ["openai", "gemini", "anthropic"])
    func theKeyReachesNoHookAndNoStatsFile(provider: String) async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let heard = dir.appendingPathComponent("heard.jsonl").path
        let hook = dir.appendingPathComponent("listen.py").path
        _ = FileManager.default.createFile(
            atPath: hook,
            contents: Data(
                """
                #!/usr/bin/env python3
                import json, sys
                with open("\(heard)", "a") as log:
                    for line in sys.stdin:
                        log.write(line); log.flush()
                        q = json.loads(line)
                        sys.stdout.write(json.dumps({"index": q["index"], "hook": q["hook"]}) + "\\n"); sys.stdout.flush()
                """.utf8))
        chmod(hook, 0o755)
        let stats = dir.appendingPathComponent("stats.json").path
        let origin = try Peers.hostile.get().deletingLastPathComponent()
        var environment = ProcessInfo.processInfo.environment
        environment["CANARY_KEY"] = HostileServerTests.canary
        for route in EveryProviderKeyTests.routes + HostileServerTests.echoRoutes {
            let base = origin.appendingPathComponent("r").appendingPathComponent(route).absoluteString
            let run = try await runPipeline(
                ["--provider", provider, "--base-url", base, "--api-key-env", "CANARY_KEY", "--max-attempts", "1", "--timeout", "60",
                 "--hook-exec", hook, "--stats-json", stats, "--stats"],
                stdin: #"{"id":"x","model":"m","prompt":"hi"}"#, environment: environment)
            #expect(run.lines.count == 1, "\(provider) \(route): \(run.status) \(run.stderr)")
            #expect(!HostileServerTests.leaks(run.stdout), "\(provider) \(route): the key reached stdout")
            #expect(!HostileServerTests.leaks(run.stderr), "\(provider) \(route): the key reached stderr")
            let statsText = (try? String(contentsOfFile: stats, encoding: .utf8)) ?? ""
            #expect(!statsText.isEmpty, "\(provider) \(route): no stats file")
            #expect(!HostileServerTests.leaks(statsText), "\(provider) \(route): the key reached --stats-json")
        }
        let hookText = (try? String(contentsOfFile: heard, encoding: .utf8)) ?? ""
        #expect(hookText.contains("\"hook\": \"after\"") || hookText.contains("\"hook\":\"after\""), "the hook heard the outcomes")
        #expect(!HostileServerTests.leaks(hookText), "\(provider): the key reached the hook program: \(hookText.prefix(2000))")
    }

    // MARK: - File descriptors

    /// With `ulimit -n 256` and `--concurrency 10000` the run once died with SIGILL inside
    /// libdispatch (its own open failed) and put a crash line on stdout. Now every command gets
    /// a result line, on our HTTP/1.1 path and on URLSession alike, and stdout holds nothing else.
    @Test(arguments: [nil, "urlsession"] as [String?])
    func aLowDescriptorLimitLosesNoResult(transport: String?) throws {
        let base = try Peers.hostile.get()
        let count = 1500
        let input = (0..<count).map { #"{"id":"c\#($0)","model":"ok","prompt":"hi"}"# }.joined(separator: "\n") + "\n"
        let dir = try temporaryDirectory(files: ["in.jsonl": input])
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.jsonl"), err = dir.appendingPathComponent("err.txt")
        let environment = transport.map { "COMMANDPIPELINE_HTTP_TRANSPORT=\($0) " } ?? ""
        let script = """
            ulimit -n 256; \(environment)exec '\(TestPaths.pipelineBinary.path)' --provider openai --base-url '\(base.absoluteString)' \
            --concurrency 10000 --max-attempts 1 --quiet < '\(dir.appendingPathComponent("in.jsonl").path)' > '\(out.path)' 2> '\(err.path)'
            """
        let run = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", script], timeout: 300)
        let stdout = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        let lines = stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        let records = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
        #expect(run.status == 0, "exit \(run.status): \(stderr.prefix(2000)) \(run.output)")
        #expect(records.count == lines.count, "stdout holds a line that is not a result: \(lines.first { !$0.hasPrefix("{") } ?? "")")
        #expect(records.count == count, "\(records.count) results for \(count) commands: \(stderr.prefix(2000))")
        #expect(records.allSatisfy { $0["status"] as? String == "succeeded" }, "\(records.first { $0["status"] as? String != "succeeded" } ?? [:])")
    }

    @Test func pastTheLimitARequestFailsPreciselyAndRetryably() {
        let errors = TransportErrors(providerName: "openai", baseURL: URL(string: "http://127.0.0.1:1/v1")!, key: nil, requestTimeout: 10)
        let error = errors.error(transport: URLError(.resourceUnavailable), endpoint: "http://127.0.0.1:1/v1/chat/completions")
        #expect(error.code == "out_of_descriptors")
        #expect(error.retryable)
        #expect(error.message.contains("out of file descriptors") && error.message.contains("ulimit -n"), "\(error.message)")
    }

    @Test func poolsAreSizedFromTheDescriptorLimit() {
        #expect(DescriptorLimit.connectionsPerPool(limit: 256) == (256 - 64 - 32) / 2)
        #expect(DescriptorLimit.connectionsPerPool(limit: 1024) == (1024 - 64 - 128) / 2)
        #expect(DescriptorLimit.connectionsPerPool(limit: 10) == 1)
        #expect(HTTPClient(maxConnectionsPerHost: 1 << 20).maxConnectionsPerHost == DescriptorLimit.connectionsPerPool())
        #expect(HTTPClient(maxConnectionsPerHost: 3).maxConnectionsPerHost == 3)
        // The CLI raises its soft limit to the hard one at start.
        let before = DescriptorLimit.current
        #expect(DescriptorLimit.raiseSoftLimitToHard() >= before)
    }
}
