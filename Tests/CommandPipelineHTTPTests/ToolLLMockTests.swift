import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// Tool calls through each adapter against llmock (PyPI), whose OpenAI, Anthropic and Gemini
/// routes read the tools a request offers in the provider's own shape and call one with
/// arguments valid against its schema (`--tool-mode auto`, the default): `tool_choice` is
/// honoured, a conversation whose last turn is a tool result is answered in text, and
/// streamed arguments come in pieces (OpenAI `tool_calls` deltas, Anthropic
/// `input_json_delta`s). A `tool_fault` scenario makes the arguments unparseable, once.
/// Every test uses its own model name, so scenarios never cross.
@Suite struct ToolLLMockTests {
    enum Route: String, CaseIterable { case openai, anthropic, gemini }

    static let weather = ToolDefinition(
        name: "get_weather", description: "The current weather of a city",
        parameters: try! JSONParser.parse(
            #"{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"]}"#))
    static let time = ToolDefinition(
        name: "get_time", description: "The local time in a time zone",
        parameters: try! JSONParser.parse(#"{"type":"object","properties":{"zone":{"type":"string"}},"required":["zone"]}"#))

    static func provider(_ route: Route) throws -> any GenerationCapability {
        let origin = try Peers.llmock.get()
        switch route {
        case .openai:
            return OpenAIProvider.make(OpenAIConfiguration(baseURL: origin.appendingPathComponent("v1"), apiKey: APIKey("sk-llmock-tools-0001"), capabilities: [.generation, .streaming]))
        case .anthropic:
            return AnthropicProvider.make(AnthropicConfiguration(
                baseURL: origin.appendingPathComponent("anthropic"), apiKey: APIKey("sk-ant-llmock-tools"), apiKeyVariable: "K", capabilities: [.generation, .streaming],
                requestTimeout: 30))
        case .gemini:
            return LLMock(origin: origin).adapter()
        }
    }

    static func engine(_ route: Route, maxRepairs: Int = 1) throws -> PipelineEngine {
        var configuration = EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(5), jitter: 0))
        configuration.maxRepairs = maxRepairs
        return try PipelineEngine(provider: provider(route), configuration: configuration)
    }

    static func model(_ route: Route, _ tag: String) -> String {
        let id = UUID().uuidString.prefix(8).lowercased()
        return route == .anthropic ? "claude-\(tag)-\(id)" : route == .gemini ? "gemini-\(tag)-\(id)" : "gpt-\(tag)-\(id)"
    }

    static func command(_ model: String, _ parts: [APIPart] = [.text("What is the weather in Paris?")], choice: ToolChoice? = nil) -> PlannedCommand {
        var config = GenerationConfig(maxTokens: 200)
        config.tools = [weather, time]
        config.toolChoice = choice
        return PlannedCommand(id: model, plan: ExecutionPlan(call: APICall(model: model, parts: parts, config: config)))
    }

    @Test(arguments: Route.allCases)
    func theModelCallsAToolWithArgumentsThatConform(_ route: Route) async throws {
        let engine = try Self.engine(route)
        let outcome = await engine.run(Self.command(Self.model(route, "call")))
        let response = try #require(outcome.result.success?.responses.first, "\(route): \(String(describing: outcome.error))")
        #expect(response.finishReason == "tool_calls")
        let call = try #require(response.toolCalls.first)
        #expect(response.toolCalls.count == 1 && call.name == "get_weather" && !call.id.isEmpty)
        // The engine checked them; check again here, independently of the engine's path.
        #expect(call.arguments.objectValue?["city"]?.stringValue != nil)
        #expect(["celsius", "fahrenheit"].contains(call.arguments.objectValue?["unit"]?.stringValue ?? ""))
        #expect(outcome.telemetry.calls.first?.repairs == 0)
    }

    @Test(arguments: Route.allCases)
    func toolChoiceIsHonoured(_ route: Route) async throws {
        let engine = try Self.engine(route)
        let named = await engine.run(Self.command(Self.model(route, "named"), choice: .named("get_time"))).result.success?.responses.first
        #expect(named?.toolCalls.map(\.name) == ["get_time"], "\(route)")
        #expect(named?.toolCalls.first?.arguments.objectValue?["zone"]?.stringValue != nil)
        let none = await engine.run(Self.command(Self.model(route, "none"), choice: ToolChoice.none)).result.success?.responses.first
        #expect(none?.toolCalls.isEmpty == true && none?.text.isEmpty == false && none?.finishReason == "stop", "\(route)")
    }

    @Test(arguments: Route.allCases)
    func aConversationContinuesWithTheToolsResult(_ route: Route) async throws {
        let engine = try Self.engine(route)
        let model = Self.model(route, "loop")
        let first = try #require(await engine.run(Self.command(model)).result.success?.responses.first)
        let call = try #require(first.toolCalls.first)
        let parts: [APIPart] = [
            .history([HistoryTurn(question: "What is the weather in Paris?", answer: first.text, toolCalls: first.toolCalls)]),
            .toolResult(ToolResult(id: call.id, name: call.name, content: ["temperature": 21, "sky": "clear"])),
        ]
        let second = await engine.run(Self.command(model, parts))
        let answer = try #require(second.result.success?.responses.first, "\(route): \(String(describing: second.error))")
        // llmock answers in text once the last turn carries the tool's result (in the provider's shape).
        #expect(answer.toolCalls.isEmpty && !answer.text.isEmpty && answer.finishReason == "stop", "\(route)")
    }

    @Test(arguments: Route.allCases)
    func streamedArgumentsAreJoinedAndEachCallIsAnEvent(_ route: Route) async throws {
        let engine = try Self.engine(route)
        let model = Self.model(route, "stream")
        let whole = try #require(await engine.run(Self.command(model)).result.success?.responses.first?.toolCalls.first)
        var events: [PipelineEvent] = []
        for await event in engine.events(for: Self.command(model)) { events.append(event) }
        let announced = events.compactMap { event -> ToolCall? in if case .toolCall(0, let call) = event.kind { call } else { nil } }
        #expect(announced.count == 1, "\(route): \(events.map(\.type))")
        #expect(announced.first?.name == whole.name && announced.first?.arguments == whole.arguments && announced.first?.unparsedArguments == nil)
        guard case .commandSucceeded(let outcome)? = events.last?.kind else { Issue.record("\(route): \(events.map(\.type))"); return }
        #expect(outcome.result.success?.responses.first?.toolCalls.first?.arguments == whole.arguments)
    }

    @Test(arguments: Route.allCases)
    func unparseableArgumentsAreRepaired(_ route: Route) async throws {
        let model = Self.model(route, "fault")
        let mock = LLMock(origin: try Peers.llmock.get())
        try await mock.script(model: model, [["type": "tool_fault", "kind": "malformed_arguments"]])
        let outcome = try await Self.engine(route).run(Self.command(model, choice: .required))
        let response = try #require(outcome.result.success?.responses.first, "\(route): \(String(describing: outcome.error))")
        #expect(response.toolCalls.first?.name == "get_weather" && response.toolCalls.first?.unparsedArguments == nil)
        #expect(outcome.telemetry.calls.first?.repairs == 1, "\(route)")
        // Without repairs the same fault fails the call with invalid_output at the arguments.
        let strict = Self.model(route, "strict")
        try await mock.script(model: strict, [["type": "tool_fault", "kind": "malformed_arguments"]])
        let failed = try await Self.engine(route, maxRepairs: 0).run(Self.command(strict, choice: .required))
        #expect(failed.error?.kind == .invalidOutput && failed.error?.path == "$.tool_calls[0].arguments", "\(route): \(String(describing: failed.error))")
    }
}
