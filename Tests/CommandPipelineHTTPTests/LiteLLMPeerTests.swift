import CommandPipeline
@testable import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// The three adapters through LiteLLM's proxy (`Peers.liteLLM`, a gateway nobody here wrote)
/// in front of llmock: its OpenAI, Anthropic and Gemini routes, whole answers and streams, and
/// the upstream's retry hint that a gateway forwards as `llm_provider-retry-after`. LiteLLM
/// takes a minute or more to start on a loaded machine: only with `PIPELINE_E2E=1`.
/// (Batches are not driven through it: LiteLLM's `/v1/batches` needs a managed-files database
/// or a real provider's batch API behind it, neither of which llmock is.)
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
}
