import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// The router end to end: `pipeline --deployments FILE` against several local servers —
/// `Tests/Tools/deployment_server.py` (one answering, one failing with 500s, one throttling with
/// rate-limit headers, one slow, one dying mid-run) and llmock (PyPI) speaking Anthropic.
@Suite(.serialized) struct RoutingHTTPTests {
    struct Server {
        let origin: URL
        func stats() throws -> [String: [String: Int]] {
            let data = try Data(contentsOf: origin.appendingPathComponent("stats"))
            return try JSONDecoder().decode([String: [String: Int]].self, from: data)
        }
    }

    static func deployment(_ name: String, _ origin: URL, weight: Int = 1, provider: String = "openai", path: String? = nil) -> String {
        let base = origin.appendingPathComponent(path ?? "\(name)/v1").absoluteString
        return #"{"name": "\#(name)", "provider": "\#(provider)", "base_url": "\#(base)", "model": "m-\#(name)", "weight": \#(weight)}"#
    }

    static func commands(_ n: Int, model: String = "fast", prefix: String = "c") -> String {
        (0..<n).map { #"{"id": "\#(prefix)\#($0)", "model": "\#(model)", "prompt": "question \#($0)"}"# }.joined(separator: "\n") + "\n"
    }

    static func records(_ stdout: String) throws -> [[String: Any]] {
        try stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    @Test func everyCommandSucceedsWhileOneDeploymentIsHealthyAndFailingOnesGetAHandful() async throws {
        let origin = try Peers.deployments.get()
        let anthropic = try Peers.llmockAnthropic.get()
        let server = Server(origin: origin)
        let dir = try temporaryDirectory(files: [
            "deployments.json": """
            {"models": {"fast": [\(Self.deployment("ok-a", origin)), \(Self.deployment("fail-b", origin, weight: 3)), \(Self.deployment("dies-d", origin, weight: 2)),
              \(Self.deployment("slow-e", origin)), \(Self.deployment("claude", anthropic, provider: "anthropic", path: "anthropic"))]},
             "breaker": {"failures": 3, "cooldown_ms": 600000}}
            """
        ])
        let input = Self.commands(240) + Self.commands(20, model: "plain", prefix: "p")
        let run = try await runPipeline(
            ["--provider", "mock", "--deployments", dir.appendingPathComponent("deployments.json").path, "--concurrency", "8", "--quiet",
             "--stats-json", dir.appendingPathComponent("stats.json").path],
            stdin: input, timeout: .seconds(120))
        #expect(run.status == 0, "\(run.stderr)")
        let records = try Self.records(run.stdout)
        #expect(records.count == 260)
        var served: [String: Int] = [:]
        for record in records {
            #expect(record["status"] as? String == "succeeded", "\(record)")
            let response = ((record["responses"] as? [[String: Any]]) ?? []).first ?? [:]
            if (record["id"] as? String)?.hasPrefix("p") == true {
                #expect(response["deployment"] == nil, "a model not in the file goes to --provider")
            } else {
                let name = response["deployment"] as? String ?? "none"
                served[name, default: 0] += 1
                #expect(["ok-a", "dies-d", "slow-e", "claude"].contains(name))
                #expect(response["provider"] as? String == (name == "claude" ? "anthropic" : "openai"))
            }
        }
        #expect((served["claude"] ?? 0) > 0, "the deployment on another provider served too")
        let counts = try server.stats()
        // Three failures open the breaker; at most the calls already in flight (8) follow them.
        #expect((counts["fail-b"]?["requests"] ?? 0) <= 3 + 8, "\(counts)")
        #expect((counts["dies-d"]?["requests"] ?? 0) <= 10 + 3 + 8, "\(counts)")
        let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("stats.json"))) as! [String: Any]
        let rows = (stats["deployments"] as? [[String: Any]]) ?? []
        #expect(rows.count == 5)
        for row in rows where ["fail-b", "dies-d"].contains(row["deployment"] as? String) {
            #expect(row["breaker_openings"] as? Int == 1, "\(row)")
            #expect(row["state"] as? String == "open")
        }
    }

    @Test func aThrottlingDeploymentIsSlowedByItsHeadersBeforeIt429s() async throws {
        let origin = try Peers.deployments.get()
        let server = Server(origin: origin)
        let dir = try temporaryDirectory(files: ["d.json": #"{"models": {"fast": [\#(Self.deployment("throttle-c", origin))]}}"#])
        let run = try await runPipeline(
            ["--provider", "mock", "--deployments", dir.appendingPathComponent("d.json").path, "--concurrency", "1", "--quiet", "--events"],
            stdin: Self.commands(12), timeout: .seconds(120))
        #expect(run.status == 0, "\(run.stderr)")
        let counts = try server.stats()["throttle-c"] ?? [:]
        #expect(counts["answered"] == 12)
        #expect(counts["429"] == 0, "the run waited for the reset its headers announced: \(counts)")
        #expect(run.stdout.contains(#""type":"attempt_routed""#) && run.stdout.contains(#""deployment":"throttle-c""#))
    }

    /// An image in a routed call to an OpenAI deployment goes inline (an `image_url` data URL), as
    /// the unrouted adapter sends it: FakeAI answers it (a placeholder left in the request, as
    /// before the routed provider passed the adapters' `InlineFilesCapability` on, never reached it).
    @Test func anImageInARoutedCallToAnOpenAIDeploymentGoesInline() async throws {
        let dir = try temporaryDirectory()
        let image = dir.appendingPathComponent("pixel.png")
        try UsageInteropTests.png.write(to: image)
        let vision = OpenAIProvider.make(OpenAIConfiguration(baseURL: try Peers.fakeAI.get(), capabilities: [.generation]))
        // FakeAI counts an image by its size in tiles: a model with a large context window.
        let router = try Router(
            configuration: RouterConfiguration(models: ["seeing": [Deployment(name: "vision", provider: "openai", model: "openai/gpt-oss-120b")]]),
            adapters: ["vision": vision], seed: 1)
        var configuration = EngineConfiguration(retryPolicy: .none)
        configuration.router = router
        let engine = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
        let plan = ExecutionPlan(calls: [APICall(model: "seeing", parts: [.filePlaceholder(FilePlaceholder(path: image.path)), .text("What is in this picture?")])])
        let outcome = await engine.run(PlannedCommand(id: "pixel", plan: plan))
        #expect(outcome.succeeded, "\(String(describing: outcome.error))")
        #expect(outcome.telemetry.uploads == UploadCounts(), "the image went inline, not as an upload")
        let response = outcome.result.success?.responses.first
        #expect(response?.deployment == "vision" && response?.text.isEmpty == false)
        #expect(router.stats()[0].succeeded == 1)
    }

    /// The routed provider's cap for a type some adapter takes only inline is the smallest of
    /// the deployments' and the fallback's; a type none takes only inline is not inlined.
    @Test func theRoutedProvidersInlineLimitIsTheSmallestOfItsAdapters() throws {
        struct Capped: GenerationCapability, InlineFilesCapability {
            let limit: Int
            var providerName: String { "capped" }
            func generate(_ request: GenerationRequest) async throws -> GenerationResponse { throw CancellationError() }
            func inlineLimit(for mimeType: String) -> Int? { mimeType == "image/png" ? limit : nil }
        }
        let openAI = OpenAIProvider.make(OpenAIConfiguration(baseURL: URL(string: "http://127.0.0.1:1/v1")!))
        let router = try Router(
            configuration: RouterConfiguration(models: [
                "a": [Deployment(name: "openai", provider: "openai", model: "m"), Deployment(name: "plain", provider: "mock", model: "m")],
                "b": [Deployment(name: "small", provider: "capped", model: "m")],
            ]),
            adapters: ["openai": openAI, "plain": MockProvider.make(), "small": Capped(limit: 1000)], seed: 1)
        let routed = try #require(RoutedProvider(router: router, fallback: MockProvider.make()).inlineFiles)
        #expect(routed.inlineLimit(for: "image/png") == 1000)
        #expect(routed.inlineLimit(for: "image/jpeg") == 20 << 20, "only OpenAI takes JPEG only inline")
        #expect(routed.inlineLimit(for: "application/pdf") == nil)
        let fallbackOnly = try Router(configuration: RouterConfiguration(models: ["a": [Deployment(name: "plain", provider: "mock", model: "m")]]), adapters: ["plain": MockProvider.make()])
        let viaFallback = try #require(RoutedProvider(router: fallbackOnly, fallback: Capped(limit: 7)).inlineFiles)
        #expect(viaFallback.inlineLimit(for: "image/png") == 7, "the fallback's models are sent by the routed provider too")
    }

    @Test func aBadDeploymentsFileIsAUsageErrorNamingThePlace() async throws {
        let dir = try temporaryDirectory(files: [
            "unknown.json": #"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m", "colour": "red"}]}}"#,
            "nokey.json": #"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m", "api_key_env": "ROUTER_TEST_UNSET_KEY"}]}}"#,
            "provider.json": #"{"models": {"fast": [{"name": "a", "provider": "nosuch", "model": "m"}]}}"#,
        ])
        for (file, expected) in [
            ("unknown.json", "models.fast[0].colour: unknown key"), ("nokey.json", "models.fast[0].api_key_env: $ROUTER_TEST_UNSET_KEY is not set"),
            ("provider.json", "models.fast[0] (a): unknown provider 'nosuch'"),
        ] {
            let run = try await runPipeline(["--provider", "mock", "--deployments", dir.appendingPathComponent(file).path], stdin: Self.commands(1))
            #expect(run.status == 2)
            #expect(run.stderr.contains(expected), "\(run.stderr)")
        }
    }
}
