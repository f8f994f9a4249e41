import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// The three adapters through LiteLLM's proxy (`Peers.liteLLM`, a gateway nobody here wrote)
/// in front of llmock: its OpenAI, Anthropic and Gemini routes, whole answers and streams, and
/// the upstream's retry hint that a gateway forwards as `llm_provider-retry-after`. LiteLLM
/// takes a minute or more to start on a loaded machine: only with `PIPELINE_E2E=1`.
/// Batches go through its OpenAI-format Files and Batch API, passed through to llmock's
/// (`files_settings` in its config; LiteLLM's managed files, which need a database, are not used).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["PIPELINE_E2E"] == "1", "set PIPELINE_E2E=1 to start LiteLLM's proxy"))
struct LiteLLMPeerTests {
    static var key: APIKey { APIKey(Peers.liteLLMKey) }

    static func adapter(_ provider: String) throws -> any GenerationCapability {
        let origin = try Peers.liteLLM.get()
        let capabilities: Set<ProviderCapability> = [.generation, .streaming]
        switch provider {
        case "openai":
            return OpenAIProvider.make(
                OpenAIConfiguration(baseURL: origin.appendingPathComponent("v1"), apiKey: key, capabilities: capabilities, requestTimeout: 60))
        case "anthropic":
            return AnthropicProvider.make(AnthropicConfiguration(baseURL: origin, apiKey: key, capabilities: capabilities, requestTimeout: 60))
        default:
            return GeminiProvider.make(GeminiConfiguration(baseURL: origin, apiKey: key, capabilities: capabilities, requestTimeout: 60))
        }
    }

    @Test(arguments: ["openai", "anthropic", "gemini"])
    func wholeAnswersAndStreamsThroughEachRoute(provider: String) async throws {
        let adapter = try Self.adapter(provider)
        let model = "litellm-\(provider)-\(UUID().uuidString.prefix(6))"
        let request = GenerationRequest(model: model, parts: [.text("Say hello")], config: GenerationConfig(maxTokens: 50))

        let whole = try await adapter.generate(request)
        #expect(!whole.text.isEmpty, "\(provider): \(whole)")
        #expect(whole.usage.completionTokens > 0, "\(provider): \(whole.usage)")

        let streaming = try #require(adapter.streaming, "\(provider) declared streaming")
        var deltas = ""
        var final: GenerationResponse?
        for try await chunk in streaming.stream(request) {
            switch chunk {
            case .delta(let text): deltas += text
            case .completed(let response): final = response
            case .toolCall: break
            }
        }
        let completed = try #require(final, "\(provider): the stream ended without its answer")
        #expect(!deltas.isEmpty && deltas == completed.text, "\(provider): deltas \(deltas.debugDescription), final \(completed.text.debugDescription)")
    }

    /// llmock answers 429 with `Retry-After: 7`; LiteLLM answers 429 too and forwards the hint as
    /// `llm_provider-retry-after` (and `-ms`): the adapter reads it as the wait before the next attempt.
    @Test func theUpstreamsRetryHintComesThroughTheGateway() async throws {
        let mock = try LLMock.start()
        let model = "litellm-429-\(UUID().uuidString.prefix(6))"
        try await mock.script(model: model, [["type": "fail", "status": 429, "retry_after": 7]])
        do {
            _ = try await Self.adapter("openai").generate(GenerationRequest(model: model, parts: [.text("hi")]))
            Issue.record("a scripted 429 succeeded")
        } catch let error as APIError {
            #expect(error.kind == .rateLimited && error.retryable, "\(error)")
            #expect(error.retryAfter == .seconds(7), "\(error)")
            #expect(!error.message.contains(Peers.liteLLMKey))
        }
    }

    /// The CLI with `--capabilities` on every provider, Gemini included, through the gateway.
    @Test(arguments: ["openai", "anthropic", "gemini"])
    func theCLIRunsEachProviderThroughTheGateway(provider: String) async throws {
        let origin = try Peers.liteLLM.get()
        let base = provider == "openai" ? origin.appendingPathComponent("v1") : origin
        let variable = "LITELLM_TEST_KEY"
        var environment = ProcessInfo.processInfo.environment
        environment[variable] = Peers.liteLLMKey
        let input = #"{"id":"a","model":"cli-\#(provider)","prompt":"Hello"}"# + "\n"
        let run = try await runPipeline(
            ["--provider", provider, "--base-url", base.absoluteString, "--api-key-env", variable, "--capabilities", "generation,streaming", "--quiet"],
            stdin: input, environment: environment)
        #expect(run.status == 0, "\(provider): \(run.stderr)")
        #expect(run.records.first?["status"] as? String == "succeeded", "\(provider): \(run.stdout)")
        #expect(!run.stdout.contains(Peers.liteLLMKey) && !run.stderr.contains(Peers.liteLLMKey))
    }

    /// `pipeline batch submit` and `collect` through the gateway's Files and Batch API: every
    /// command is answered once, in input order, with the texts and usage of a live run of the
    /// same commands through the same gateway, and the gateway's key is in no line.
    @Test func aBatchGoesThroughTheGatewayAndCollectEqualsRun() async throws {
        let origin = try Peers.liteLLM.get()
        let variable = "LITELLM_TEST_KEY"
        var environment = ProcessInfo.processInfo.environment
        environment[variable] = Peers.liteLLMKey
        let endpoint = ["--provider", "openai", "--base-url", origin.appendingPathComponent("v1").absoluteString, "--api-key-env", variable]
        let n = 7
        var input = ""
        for i in 0..<n { input += #"{"id":"gw-\#(i)","model":"gpt-4o-mini","prompt":"paper \#(i)"}"# + "\n" }
        let job = try temporaryDirectory().appendingPathComponent("job.json").path

        let submit = try await runPipeline(
            ["batch", "submit", "--job", job, "--max-requests-per-job", "4", "--capabilities", "generation,batch", "--quiet"] + endpoint,
            stdin: input, environment: environment)
        #expect(submit.status == 0, "\(submit.stderr)")
        let jobs = try #require(submit.records.first?["jobs"] as? [String], "\(submit.stdout)")
        #expect(jobs.count == 2, "7 requests at 4 per job: \(jobs)")

        let collected = try await runPipeline(
            ["batch", "collect", job, "--wait", "--poll-seconds", "0.25", "--timeout", "120", "--quiet"] + endpoint, environment: environment)
        let live = try await runPipeline(["--quiet"] + endpoint, stdin: input, environment: environment)
        #expect(collected.status == 0, "\(collected.stderr)")
        #expect(collected.records.map { $0["id"] as? String } == (0..<n).map { "gw-\($0)" })
        #expect(collected.records.allSatisfy { $0["status"] as? String == "succeeded" && $0[path: "telemetry.batch"] as? Bool == true }, "\(collected.stdout)")
        let texts = { (run: PipelineRun) in run.records.map { ($0["responses"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String } } }
        #expect(texts(collected) == texts(live) && texts(live).allSatisfy { !$0.isEmpty }, "collected \(texts(collected)), live \(texts(live))")
        #expect(collected.records.map { $0[path: "usage.total_tokens"] as? Int } == live.records.map { $0[path: "usage.total_tokens"] as? Int })
        for run in [submit, collected] {
            #expect(!run.stdout.contains(Peers.liteLLMKey) && !run.stderr.contains(Peers.liteLLMKey))
        }
    }
}
