import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// The three HTTP providers as a Swift developer makes them: one way for each (a configuration
/// and `make`, returning `any GenerationCapability`), the README's example compiled and run.
@Suite(.serialized) struct ProvidersInCodeTests {
    /// README.md, "Providers in code", verbatim but for the base URL (a local FakeAI server).
    @Test func theReadmeProvidersExampleRunsAgainstALocalServer() async throws {
        let base = try Peers.fakeAI.get()
        // README-BEGIN
        let environment = ProcessInfo.processInfo.environment

        // OpenAI, or a server that speaks its Chat Completions API (vLLM, Ollama, llama.cpp, LM Studio):
        // the base URL includes /v1.
        let openAI = OpenAIProvider.make(OpenAIConfiguration(
            baseURL: base,
            apiKey: APIKey.fromEnvironment("OPENAI_API_KEY", in: environment),
            capabilities: [.generation, .streaming]))

        // Gemini and Anthropic: the API's origin is the default base URL.
        let gemini = GeminiProvider.make(GeminiConfiguration(
            apiKey: APIKey.fromEnvironment("GEMINI_API_KEY", in: environment)))
        let anthropic = AnthropicProvider.make(AnthropicConfiguration(
            apiKey: APIKey.fromEnvironment("ANTHROPIC_API_KEY", in: environment),
            capabilities: [.generation, .streaming, .tokenCounting]))

        let configuration = EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 4), callTimeout: .seconds(60))
        let engine = try PipelineEngine(provider: openAI, configuration: configuration)
        let answer = try await engine.execute(PlannedCommand(
            id: "q1", plan: ExecutionPlan(call: APICall(model: "gpt-4o-mini", parts: [.text("Say hello.")])))).get()
        print(answer.responses[0].text, gemini.providerName, anthropic.providerName)
        // README-END
        #expect(!answer.responses[0].text.isEmpty)
        #expect(answer.telemetry.provider == "openai")
        #expect(ProviderCapability.probe(openAI) == [.generation, .streaming])
        #expect(ProviderCapability.probe(gemini) == GeminiConfiguration.supportedCapabilities)
        #expect(ProviderCapability.probe(anthropic) == [.generation, .streaming, .tokenCounting])
    }

    /// The block above is the README's, line for line, but for the one base URL line.
    @Test func theExampleIsTheReadmes() throws {
        let readme = try String(contentsOf: Peers.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "### Providers in code"))
        let fence = try #require(readme.range(of: "```swift\n", range: section.upperBound..<readme.endIndex))
        let end = try #require(readme.range(of: "\n```", range: fence.upperBound..<readme.endIndex))
        let readmeLines = readme[fence.upperBound..<end.lowerBound].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let body = try #require(readmeLines.firstIndex { $0.hasPrefix("let environment") })
        #expect(readmeLines[..<body].filter { !$0.isEmpty } == ["import CommandPipeline", "import CommandPipelineHTTP", "import Foundation"])

        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        let begin = try #require(source.range(of: "// README-BEGIN\n"))
        let stop = try #require(source.range(of: "        // README-END", range: begin.upperBound..<source.endIndex))
        let testLines = source[begin.upperBound..<stop.lowerBound].split(separator: "\n", omittingEmptySubsequences: true).map {
            String($0.dropFirst(8))
        }
        let expected = readmeLines[body...].filter { !$0.isEmpty }.map {
            $0 == #"    baseURL: URL(string: "http://127.0.0.1:8000/v1")!,"# ? "    baseURL: base," : $0
        }
        #expect(testLines == expected)
    }

    /// Every provider's `make` returns the same kind of thing, and Gemini's capabilities can be
    /// named like the others' (generation always kept).
    @Test func everyProviderIsMadeTheSameWayWithTheCapabilitiesNamed() {
        let local = URL(string: "http://127.0.0.1:9")!
        let providers: [any GenerationCapability] = [
            OpenAIProvider.make(OpenAIConfiguration(baseURL: local.appendingPathComponent("v1"), capabilities: [.generation, .uploads])),
            GeminiProvider.make(GeminiConfiguration(baseURL: local, capabilities: [.streaming, .tokenCounting])),
            AnthropicProvider.make(AnthropicConfiguration(baseURL: local, capabilities: [.caching])),
        ]
        #expect(providers.map(\.providerName) == ["openai", "gemini", "anthropic"])
        #expect(providers.map { ProviderCapability.probe($0) } == [
            [.generation, .uploads], [.generation, .streaming, .tokenCounting], [.generation, .caching],
        ])
        #expect(ProviderCapability.probe(GeminiProvider.make(GeminiConfiguration(baseURL: local))) == GeminiConfiguration.supportedCapabilities)
    }

    /// The CLI's `--capabilities` names Gemini's too (a subset; before, anything but all of
    /// them was refused).
    @Test func geminiCapabilitiesFromOptions() throws {
        let options = ProviderOptions(baseURL: "http://127.0.0.1:9", environment: [:], capabilities: [.streaming])
        #expect(try GeminiConfiguration(options: options).capabilities == [.generation, .streaming])
        #expect(try GeminiConfiguration(options: ProviderOptions(baseURL: "http://127.0.0.1:9", environment: [:])).capabilities
            == GeminiConfiguration.supportedCapabilities)
    }

    /// A base URL against the provider's convention, made in code, fails the first request
    /// with a message saying what to change (before, a 404 from the server).
    @Test func aBaseURLAgainstItsProvidersConventionIsRefusedInCode() async throws {
        let request = GenerationRequest(model: "m", parts: [.text("q")])
        let gemini = GeminiProvider.make(GeminiConfiguration(baseURL: URL(string: "http://127.0.0.1:9/v1beta")!))
        let anthropic = AnthropicProvider.make(AnthropicConfiguration(baseURL: URL(string: "http://127.0.0.1:9/v1")!))
        for (provider, hint) in [(gemini, "drop the /v1beta"), (anthropic, "drop the /v1")] as [(any GenerationCapability, String)] {
            do {
                _ = try await provider.generate(request)
                Issue.record("\(provider.providerName) sent a request to a base URL against its convention")
            } catch let error as APIError {
                #expect(error.kind == .invalidCommand)
                #expect(error.message.contains(hint), "\(error.message)")
            }
        }
        #expect(GeminiConfiguration(baseURL: URL(string: "http://127.0.0.1:9/gemini")!).endpointProblem == nil)
        #expect(AnthropicConfiguration(baseURL: URL(string: "http://127.0.0.1:9")!).endpointProblem == nil)
    }
}
