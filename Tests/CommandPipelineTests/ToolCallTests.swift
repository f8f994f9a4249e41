@testable import CommandPipeline
import CommandPipelineTesting
import Testing

/// The engine's side of tool calls (`Design/tool-calls.md`): `config.tools` and `tool_choice`
/// on the wire and checked at validation, the mock's calls, each answer's calls checked against
/// their tool's parameters and repaired (the rejected calls answered by tool results), the
/// `tool_call` events, and a tool conversation continued through history parts.
@Suite struct ToolCallTests {
    static let weather = ToolDefinition(
        name: "get_weather", description: "The weather of a city",
        parameters: try! JSONParser.parse(
            #"{"type":"object","properties":{"city":{"type":"string","minLength":2},"unit":{"enum":["c","f"]}},"required":["city"],"additionalProperties":false}"#))
    static let time = ToolDefinition(name: "get_time", parameters: try! JSONParser.parse(#"{"type":"object","properties":{"zone":{"type":"string"}}}"#))

    static func command(_ prompt: String = "Weather in Paris?", tools: [ToolDefinition] = [weather, time], choice: ToolChoice? = nil, parts: [APIPart]? = nil, maxRepairs: Int? = nil) -> PlannedCommand {
        var config = GenerationConfig()
        config.tools = tools
        config.toolChoice = choice
        config.maxRepairs = maxRepairs
        return PlannedCommand(id: "t", plan: ExecutionPlan(call: APICall(model: "m", parts: parts ?? [.text(prompt)], config: config)))
    }

    static func engine(_ provider: any GenerationCapability, maxRepairs: Int = 1) throws -> PipelineEngine {
        var configuration = EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .zero, jitter: 0))
        configuration.maxRepairs = maxRepairs
        return try PipelineEngine(provider: provider, configuration: configuration)
    }

    static func read(_ line: String) -> Result<PlannedCommand, CommandRejection> {
        WireFormat.command(from: try! JSONParser.parse(line), position: 1)
    }

    // MARK: the wire and validation

    @Test func toolsChoiceHistoryCallsAndResultsRoundTripTheWire() throws {
        let line = #"""
            {"id":"w","plan":{"calls":[{"model":"m","parts":[
              {"type":"history","turns":[{"question":"Weather in Paris?","tool_calls":[{"id":"c1","name":"get_weather","arguments":{"city":"Paris"}}]}]},
              {"type":"tool_result","id":"c1","name":"get_weather","content":{"temp":21}},
              {"type":"tool_result","id":"c2","name":"get_time","content":"no clock","is_error":true}],
             "config":{"tools":[{"name":"get_weather","description":"d","parameters":{"type":"object","properties":{"city":{"type":"string"}}}},{"name":"get_time"}],
                       "tool_choice":{"name":"get_weather"}}}]}}
            """#
        let command = try Self.read(line).get()
        let call = command.plan.calls[0]
        #expect(call.config.tools?.map(\.name) == ["get_weather", "get_time"])
        #expect(call.config.tools?[1].parameters == ToolDefinition.noParameters)
        #expect(call.config.toolChoice == .named("get_weather"))
        guard case .history(let history) = call.parts[0], case .toolResult(let result) = call.parts[1], case .toolResult(let failed) = call.parts[2] else {
            Issue.record("parts \(call.parts)")
            return
        }
        #expect(history[0].question == "Weather in Paris?" && history[0].answer == "")
        #expect(history[0].toolCalls == [ToolCall(id: "c1", name: "get_weather", arguments: ["city": "Paris"])])
        #expect(result == ToolResult(id: "c1", name: "get_weather", content: ["temp": 21]))
        #expect(failed.isError && failed.contentText == "no clock")
        // Written back and read again: the same command.
        let again = WireFormat.command(from: command.wireValue, position: 1)
        #expect(try again.get() == command)
        // The shorthand takes tools and tool_choice too.
        let short = try Self.read(#"{"model":"m","prompt":"hi","tools":[{"name":"a"}],"tool_choice":"required"}"#).get()
        #expect(short.plan.calls[0].config.tools?.map(\.name) == ["a"] && short.plan.calls[0].config.toolChoice == .required)
    }

    @Test func badToolsAreInvalidCommandsNamingThePath() throws {
        func issue(_ config: String, parts: String = #"[{"type":"text","text":"x"}]"#) -> ValidationIssue? {
            switch Self.read(#"{"plan":{"calls":[{"model":"m","parts":\#(parts),"config":\#(config)}]}}"#) {
            case .success: nil
            case .failure(let rejection): rejection.issues.first
            }
        }
        let name = issue(#"{"tools":[{"name":"get weather"}]}"#)
        #expect(name?.path == "plan.calls[0].config.tools[0].name" && name?.message.contains("letters, digits") == true)
        #expect(issue(#"{"tools":[{"name":"\#(String(repeating: "a", count: 65))"}]}"#)?.path == "plan.calls[0].config.tools[0].name")
        #expect(issue(#"{"tools":[{"name":"a"},{"name":"a"}]}"#)?.path == "plan.calls[0].config.tools[1].name")
        let keyword = issue(#"{"tools":[{"name":"a","parameters":{"type":"object","properties":{"x":{"if":{}}}}}]}"#)
        #expect(keyword?.path == "plan.calls[0].config.tools[0].parameters.properties.x.if")
        #expect(issue(#"{"tools":[{"name":"a","parameters":{"type":"string"}}]}"#)?.path == "plan.calls[0].config.tools[0].parameters.type")
        #expect(issue(#"{"tools":[{"name":"a","parameters":[1]}]}"#)?.path == "plan.calls[0].config.tools[0].parameters")
        let choice = issue(#"{"tools":[{"name":"a"}],"tool_choice":{"name":"b"}}"#)
        #expect(choice?.path == "plan.calls[0].config.tool_choice" && choice?.message.contains("not among the call's tools (a)") == true)
        #expect(issue(#"{"tool_choice":{"name":"b"}}"#)?.message.contains("offers no tools") == true)
        #expect(issue(#"{"tool_choice":"sometimes"}"#)?.path == "plan.calls[0].config.tool_choice")
        #expect(issue(#"{"tools":[],"tool_choice":"required"}"#)?.message.contains("needs at least one tool") == true)
        #expect(issue(#"{"tools":[{"name":"a","extra":1}]}"#)?.path.hasPrefix("plan.calls[0].config.tools[0]") == true)
        #expect(issue("{}", parts: #"[{"type":"tool_result","id":"","name":"a","content":"x"}]"#)?.path == "plan.calls[0].parts[0].id")
        #expect(issue("{}", parts: #"[{"type":"history","turns":[{"tool_calls":[{"id":"c","name":""}]}]}]"#)?.path == "plan.calls[0].parts[0].turns[0].tool_calls[0].name")
        let many = "[" + (0...ToolSet.maximumTools).map { #"{"name":"t\#($0)"}"# }.joined(separator: ",") + "]"
        #expect(issue(#"{"tools":\#(many)}"#)?.message.contains("at most 128 tools") == true)
        #expect(issue(#"{"tools":[{"name":"_ok-1"}],"tool_choice":"none"}"#) == nil)
    }

    // MARK: the mock

    @Test func theMockCallsAToolWithConformingArgumentsDeterministically() async throws {
        let engine = try Self.engine(MockProvider.make())
        let first = try #require(await engine.run(Self.command()).result.success?.responses.first)
        let second = try #require(await engine.run(Self.command()).result.success?.responses.first)
        #expect(first == second)
        #expect(first.finishReason == "tool_calls" && first.text.isEmpty)
        let call = try #require(first.toolCalls.first)
        #expect(first.toolCalls.count == 1 && call.name == "get_weather" && call.id.hasPrefix("call_mock_"))
        let tools = try ToolSet([Self.weather, Self.time], choice: nil, path: "tools")
        #expect(try tools.check(call).get() == call.arguments)
        // A tool named in the prompt is the one called; a named choice wins; none calls nothing.
        let named = await engine.run(Self.command("What is get_time in Tokyo?")).result.success?.responses.first
        #expect(named?.toolCalls.first?.name == "get_time")
        let forced = await engine.run(Self.command("What is get_time?", choice: .named("get_weather"))).result.success?.responses.first
        #expect(forced?.toolCalls.first?.name == "get_weather")
        let none = await engine.run(Self.command(choice: ToolChoice.none)).result.success?.responses.first
        #expect(none?.toolCalls.isEmpty == true && none?.text == "echo: Weather in Paris?" && none?.finishReason == "stop")
    }

    @Test func aToolConversationContinuesThroughHistoryAndToolResults() async throws {
        let engine = try Self.engine(MockProvider.make())
        let first = try #require(await engine.run(Self.command()).result.success?.responses.first)
        // The answer's calls go back as the assistant's turn, then the results: the mock answers them.
        let parts: [APIPart] = [
            .history([HistoryTurn(question: "Weather in Paris?", answer: first.text, toolCalls: first.toolCalls)]),
            .toolResult(ToolResult(id: first.toolCalls[0].id, name: "get_weather", content: "21 °C and sunny")),
        ]
        let second = try #require(await engine.run(Self.command(parts: parts)).result.success?.responses.first)
        #expect(second.toolCalls.isEmpty && second.text == "echo: 21 °C and sunny" && second.finishReason == "stop")
        // With tool_choice required the mock calls again.
        let again = await engine.run(Self.command(choice: .required, parts: parts)).result.success?.responses.first
        #expect(again?.toolCalls.count == 1)
    }

    // MARK: checking and repairing

    @Test func wrongArgumentsAreRepairedWithAToolResultPerCall() async throws {
        let bad = ToolCall(id: "c1", name: "get_weather", arguments: ["city": 7])
        let other = ToolCall(id: "c2", name: "get_time", arguments: .object([:]))
        let good = ToolCall(id: "c3", name: "get_weather", arguments: ["city": "Paris"])
        let provider = ScriptedProvider(script: ["m": [.toolCalls([other, bad], text: "Let me look."), .toolCalls([good])]])
        let outcome = try await Self.engine(provider).run(Self.command())
        let response = try #require(outcome.result.success?.responses.first)
        #expect(response.toolCalls == [good] && response.finishReason == "tool_calls")
        #expect(outcome.telemetry.calls.first?.repairs == 1 && outcome.telemetry.calls.first?.attempts == 2)
        // The repair: the rejected turn (text and both calls), then one error result per call.
        let parts = try #require(provider.requests.last?.parts)
        #expect(parts.count == 4)
        #expect(parts[1] == .history([HistoryTurn(question: "", answer: "Let me look.", toolCalls: [other, bad])]))
        guard case .toolResult(let r0) = parts[2], case .toolResult(let r1) = parts[3] else { Issue.record("parts \(parts)"); return }
        #expect(r0.id == "c2" && r0.isError && r0.contentText.contains("Not run"))
        #expect(r1.id == "c1" && r1.isError && r1.contentText.contains("at $.tool_calls[1].arguments.city, expected a string"))
    }

    @Test func theLastWrongCallFailsInvalidOutputAtItsPath() async throws {
        let unknown = ToolCall(id: "c1", name: "delete_everything", arguments: .object([:]))
        let outcome = try await Self.engine(ScriptedProvider(otherwise: .toolCalls([unknown])), maxRepairs: 0).run(Self.command())
        let error = try #require(outcome.error)
        #expect(error.kind == .invalidOutput && error.path == "$.tool_calls[0].arguments")
        #expect(error.message.contains("tool call 0 (delete_everything)") && error.message.contains("one of the offered tools (get_weather, get_time)"))
        // Arguments that are not JSON, and a missing required property.
        let broken = ToolCall(id: "c1", name: "get_weather", argumentsText: #"{"city": "Par"#)
        #expect(broken.unparsedArguments != nil && broken.arguments == .null)
        let notJSON = try await Self.engine(ScriptedProvider(otherwise: .toolCalls([broken])), maxRepairs: 0).run(Self.command())
        #expect(notJSON.error?.message.contains("do not parse as JSON") == true)
        let missing = ToolCall(id: "c1", name: "get_weather", arguments: ["unit": "c"])
        let provider = ScriptedProvider(otherwise: .toolCalls([missing]))
        let failed = try await Self.engine(provider, maxRepairs: 2).run(Self.command())
        #expect(failed.error?.path == "$.tool_calls[0].arguments" && failed.error?.message.contains("'city'") == true)
        #expect(failed.error?.message.contains("after 2 repairs") == true && provider.requests.count == 3)
    }

    @Test func aToolAnswerIsNotCheckedAgainstTheFormatButATextAnswerIs() async throws {
        var command = Self.command()
        command.plan.calls[0].config.responseFormat = ["type": "json_object"]
        let call = ToolCall(id: "c1", name: "get_weather", arguments: ["city": "Paris"])
        let calls = try await Self.engine(ScriptedProvider(otherwise: .toolCalls([call]))).run(command)
        #expect(calls.succeeded && calls.result.success?.responses.first?.parsed == nil)
        let text = try await Self.engine(ScriptedProvider(otherwise: .answer("prose")), maxRepairs: 0).run(command)
        #expect(text.error?.kind == .invalidOutput)
        // Tool calls without config.tools (through provider_options) are handed back unchecked.
        let unchecked = try await Self.engine(ScriptedProvider(otherwise: .toolCalls([ToolCall(id: "x", name: "anything", arguments: [1])])))
            .run(PlannedCommand(id: "u", plan: ExecutionPlan(call: APICall(model: "m", parts: [.text("hi")]))))
        #expect(unchecked.result.success?.responses.first?.toolCalls.first?.name == "anything")
    }

    @Test func secretsInArgumentsAreRedacted() async throws {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
        var configuration = EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 1, baseDelay: .zero, jitter: 0))
        configuration.secrets = [key]
        let call = ToolCall(id: "c1", name: "get_weather", argumentsText: #"{"city":"sk\u002dproj-abcdefghijklmnopqrstuvwxyz0123456789"}"#)
        let outcome = try await PipelineEngine(provider: ScriptedProvider(otherwise: .toolCalls([call])), configuration: configuration).run(Self.command())
        let arguments = try #require(outcome.result.success?.responses.first?.toolCalls.first?.arguments)
        #expect(!JSONSerializer.serialize(arguments).contains("abcdefghijklmnopqrstuvwxyz"))
    }

    /// A call of an unknown tool whose long name holds a key across the 80th character: the
    /// name is redacted before it is cut, so no part of the key is shown.
    @Test func anUnknownToolsLongNameIsRedactedBeforeItIsCut() throws {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
        let name = String(repeating: "x", count: 70) + key
        let tools = try ToolSet([Self.weather], choice: nil, path: "tools")
        let call = ToolCall(id: "c1", name: name, arguments: [:])
        guard case .failure(let violation) = tools.check(call, redactor: SecretRedactor(secrets: [key])) else {
            Issue.record("a call of an unknown tool was accepted")
            return
        }
        #expect(!violation.message.contains("sk-proj-ab"), "\(violation.message)")
        #expect(violation.message.contains(SecretRedactor.marker), "\(violation.message)")
    }


    @Test func eachCallIsAToolCallEventBeforeTheCallFinishes() async throws {
        let call = ToolCall(id: "c1", name: "get_weather", arguments: ["city": "Paris"])
        for provider in [ScriptedProvider(otherwise: .toolCalls([call], text: "Looking.")) as any GenerationCapability, MockProvider.make(MockConfiguration(capabilities: [.streaming]))] {
            var events: [PipelineEvent] = []
            for await event in try Self.engine(provider).events(for: Self.command()) { events.append(event) }
            let calls = events.compactMap { event -> ToolCall? in if case .toolCall(0, let c) = event.kind { c } else { nil } }
            #expect(calls.count == 1 && calls[0].name == "get_weather")
            let toolAt = try #require(events.firstIndex { $0.type == "tool_call" })
            let finishedAt = try #require(events.firstIndex { $0.type == "call_finished" })
            #expect(toolAt < finishedAt)
            var line: [UInt8] = []
            EventWriter.write(events[toolAt], to: &line)
            let written = try JSONParser.parse(line)
            #expect(written.objectValue?["tool_call"]?.objectValue?["name"] == "get_weather" && written.objectValue?["call_index"] == 0)
        }
    }
}
