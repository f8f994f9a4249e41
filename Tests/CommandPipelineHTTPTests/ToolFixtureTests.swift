import CommandPipeline
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// Tool calls against our Anthropic and Gemini fixtures, whose tool rules (definitions,
/// `tool_choice`/`toolConfig`, a call answered by its result in the next turn, results first)
/// are checked by the official SDKs (`anthropic_sdk_check.py`, `gemini_sdk_check.py`, run by
/// `AnthropicFixtureTests` and `GeminiFixtureTests`): the adapters' requests must pass the same
/// rules, whole and streamed, and through the CLI.
@Suite struct ToolFixtureTests {
    static let weather = ToolDefinition(
        name: "get_weather", description: "The weather of a city",
        parameters: try! JSONParser.parse(#"{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}"#))

    static func command(_ model: String, _ parts: [APIPart] = [.text("Weather in Paris?")], choice: ToolChoice? = .required) -> PlannedCommand {
        var config = GenerationConfig(maxTokens: 100)
        config.tools = [weather]
        config.toolChoice = choice
        return PlannedCommand(id: "tools", plan: ExecutionPlan(call: APICall(model: model, parts: parts, config: config)))
    }

    static func providers() throws -> [(String, any GenerationCapability)] {
        let gemini = GeminiFixtureTests.Fixture(origin: try Peers.geminiFixture.get(), key: "test-tools-\(UUID().uuidString.prefix(8))")
        return [
            ("claude-sonnet-4-6", AnthropicPeers.provider(try Peers.anthropicFixture.get(), key: Peers.anthropicFixtureKey)),
            ("gemini-2.5-flash", gemini.adapter()),
            // Gemini 3 signs its calls (thoughtSignature) and refuses a continued conversation without them.
            ("gemini-3-flash-preview", gemini.adapter()),
        ]
    }

    @Test func aCallAndItsResultMakeAConversationTheFixturesAccept() async throws {
        for (model, provider) in try Self.providers() {
            let engine = PipelineEngine(provider: provider)
            let first = await engine.run(Self.command(model))
            let response = try #require(first.result.success?.responses.first, "\(model): \(String(describing: first.error))")
            let call = try #require(response.toolCalls.first)
            #expect(response.finishReason == "tool_calls" && call.name == "get_weather")
            #expect(call.arguments == ["city": "fixture-city", "unit": "c"], "\(model)")
            // The answer goes back as the assistant's turn, the result after it; auto: answered in text.
            let parts: [APIPart] = [
                .history([HistoryTurn(question: "Weather in Paris?", answer: response.text, toolCalls: response.toolCalls)]),
                .toolResult(ToolResult(id: call.id, name: call.name, content: ["temperature": 21])),
            ]
            let second = await engine.run(Self.command(model, parts, choice: .auto))
            let text = try #require(second.result.success?.responses.first, "\(model): \(String(describing: second.error))")
            #expect(text.toolCalls.isEmpty && text.text.contains("21"), "\(model): \(text.text)")
            if model.hasPrefix("gemini-3") {
                #expect(call.signature != nil, "Gemini 3 signs its call")
                // The same turn without the signature: refused, as the API refuses it.
                var unsigned = call
                unsigned.signature = nil
                let stripped: [APIPart] = [
                    .history([HistoryTurn(question: "Weather in Paris?", answer: response.text, toolCalls: [unsigned])]),
                    .toolResult(ToolResult(id: call.id, name: call.name, content: ["temperature": 21])),
                ]
                let refused = await engine.run(Self.command(model, stripped, choice: .auto))
                #expect(refused.error?.message.contains("thought_signature") == true, "\(String(describing: refused.error))")
            } else {
                #expect(call.signature == nil, "\(model)")
            }
            // A result whose call is not in the turn before is refused by the fixture, as by the API.
            let orphan = await engine.run(Self.command(model, [.text("Weather?"), .toolResult(ToolResult(id: "nope", name: "get_weather", content: "x"))], choice: .auto))
            #expect(orphan.error?.kind == .providerError || orphan.error?.kind == .invalidCommand, "\(model): \(String(describing: orphan.error))")
        }
    }

    @Test func aStreamedCallArrivesWholeAsAnEvent() async throws {
        for (model, provider) in try Self.providers() {
            let engine = PipelineEngine(provider: provider)
            var events: [PipelineEvent] = []
            for await event in engine.events(for: Self.command(model)) { events.append(event) }
            let calls = events.compactMap { event -> ToolCall? in if case .toolCall(0, let call) = event.kind { call } else { nil } }
            #expect(calls.count == 1 && calls.first?.arguments == ["city": "fixture-city", "unit": "c"], "\(model): \(events.map(\.type))")
            #expect(events.last?.type == "command_succeeded", "\(model): \(events.map(\.type))")
        }
    }

    @Test func theCLIShorthandTakesToolsAndWritesToolCallEvents() async throws {
        var environment = AnthropicPeers.environment
        environment["MY_FIXTURE_KEY"] = Peers.anthropicFixtureKey
        let command = #"{"id":"w","model":"claude-sonnet-4-6","prompt":"Weather in Paris?","tools":[{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],"tool_choice":{"name":"get_weather"}}"#
        let run = try await runPipeline(
            ["--provider", "anthropic", "--base-url", try Peers.anthropicFixture.get().absoluteString, "--api-key-env", "MY_FIXTURE_KEY", "--events", "--quiet"],
            stdin: command, environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        let events = run.records
        let toolEvent = try #require(events.first { $0["type"] as? String == "tool_call" }, "\(run.stdout)")
        #expect(toolEvent[path: "tool_call.name"] as? String == "get_weather" && toolEvent[path: "tool_call.arguments.city"] as? String == "fixture-city")
        let result = try #require(events.last)
        #expect(result[path: "result.responses"] != nil)
        let responses = result[path: "result.responses"] as? [[String: Any]] ?? []
        #expect(responses.first?["finish_reason"] as? String == "tool_calls")
        #expect((responses.first?["tool_calls"] as? [[String: Any]])?.first?["name"] as? String == "get_weather")
    }
}
