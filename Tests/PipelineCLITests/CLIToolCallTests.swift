import Foundation
import Testing

/// Tool calls through the CLI with the mock: the shorthand's `tools` and `tool_choice`, the
/// calls in the result and as `tool_call` events (both valid against the published schemas),
/// a conversation continued with a tool result, and bad tools failing only their command.
@Suite struct CLIToolCallTests {
    static let tools = #"[{"name":"get_weather","description":"The weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]"#

    @Test func theReadmeExampleGivesWhatTheReadmeShows() async throws {
        let readme = try String(contentsOf: CLI.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let command = #"{"model":"mock","prompt":"Weather in Paris?","tools":\#(Self.tools)}"#
        #expect(readme.contains("echo '\(command)'"))
        let run = try await CLI.run(["--quiet"], stdin: command)
        let shown = try #require(readme.components(separatedBy: "\n").first { $0.hasPrefix(#"{"finish_reason":"tool_calls""#) })
        let expected = try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? NSDictionary
        let response = try #require(run.records.first?[path: "responses.0"] as? [String: Any])
        #expect(["finish_reason": response["finish_reason"] as Any, "tool_calls": response["tool_calls"] as Any] as NSDictionary == expected)
    }

    @Test func callsAreInTheResultAndTheEventsAndBothMatchTheirSchemas() async throws {
        let input = [
            #"{"id":"call","model":"m","prompt":"Weather in Paris?","tools":\#(Self.tools),"tool_choice":"required"}"#,
            #"{"id":"none","model":"m","prompt":"Weather in Paris?","tools":\#(Self.tools),"tool_choice":"none"}"#,
            #"{"id":"bad","model":"m","prompt":"x","tools":[{"name":"get weather"}]}"#,
        ].joined(separator: "\n")
        let run = try await CLI.run(["--quiet"], stdin: input)
        #expect(run.status == 1)
        let records = run.records
        #expect(records[0][path: "responses.0.finish_reason"] as? String == "tool_calls")
        #expect(records[0][path: "responses.0.tool_calls.0.name"] as? String == "get_weather")
        #expect(records[0][path: "responses.0.tool_calls.0.arguments.city"] as? String == "Weather in Paris?")
        #expect((records[1][path: "responses.0"] as? [String: Any])?["tool_calls"] == nil)
        #expect(records[2][path: "error.kind"] as? String == "invalid_command" && records[2][path: "error.path"] as? String == "plan.calls[0].config.tools[0].name")
        let checked = try await CLI.validate(run.stdout, against: "result.schema.json")
        #expect(checked.valid, "\(checked.report)")

        let events = try await CLI.run(["--quiet", "--events"], stdin: input)
        let tool = try #require(events.records.first { $0["type"] as? String == "tool_call" })
        #expect(tool["id"] as? String == "call" && tool[path: "tool_call.name"] as? String == "get_weather")
        #expect(events.records.filter { $0["type"] as? String == "tool_call" }.count == 1)
        let eventsChecked = try await CLI.validate(events.stdout, against: "event.schema.json")
        #expect(eventsChecked.valid, "\(eventsChecked.report)")
    }

    @Test func aToolConversationContinuesFromTheResult() async throws {
        let first = try await CLI.run(["--quiet"], stdin: #"{"model":"m","prompt":"Weather in Paris?","tools":\#(Self.tools)}"#)
        let call = try #require(first.records.first?[path: "responses.0.tool_calls.0"] as? [String: Any])
        let callJSON = String(decoding: try JSONSerialization.data(withJSONObject: call), as: UTF8.self)
        let id = try #require(call["id"] as? String)
        let second = #"{"plan":{"calls":[{"model":"m","parts":[{"type":"history","turns":[{"question":"Weather in Paris?","tool_calls":[\#(callJSON)]}]},{"type":"tool_result","id":"\#(id)","name":"get_weather","content":"21 C, clear"}],"config":{"tools":\#(Self.tools)}}]}}"#
        let run = try await CLI.run(["--quiet"], stdin: second)
        #expect(run.records.first?[path: "responses.0.text"] as? String == "echo: 21 C, clear", "\(run.stdout)")
        #expect(run.records.first?[path: "responses.0.finish_reason"] as? String == "stop")
    }

    @Test func batchAnswersCarryTheirCallsCheckedAndOneThatBreaksItsToolFails() async throws {
        // The mock cannot make "Q" and five digits from the prompt: its call breaks the pattern.
        let coded = #"[{"name":"lookup","parameters":{"type":"object","properties":{"code":{"type":"string","pattern":"^Q[0-9]{5}$"}},"required":["code"]}}]"#
        let dir = try CLI.temporaryDirectory()
        let job = dir.appendingPathComponent("job.json")
        let input = [
            #"{"id":"ok","model":"m","prompt":"Weather in Paris?","tools":\#(Self.tools)}"#,
            #"{"id":"broken","model":"m","prompt":"A code","tools":\#(coded)}"#,
        ].joined(separator: "\n")
        let submitted = try await CLI.run(["batch", "submit", "--job", job.path, "--quiet"], stdin: input)
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let collected = try await CLI.run(["batch", "collect", job.path, "--quiet"], currentDirectory: dir)
        #expect(collected.status == 1, "\(collected.stderr)")
        let records = collected.records
        #expect(records.map { $0["status"] as? String } == ["succeeded", "failed"])
        #expect(records[0][path: "responses.0.finish_reason"] as? String == "tool_calls")
        #expect(records[0][path: "responses.0.tool_calls.0.arguments.city"] as? String == "Weather in Paris?")
        #expect(records[1][path: "error.kind"] as? String == "invalid_output")
        #expect(records[1][path: "error.path"] as? String == "$.tool_calls[0].arguments.code")
        #expect((records[1][path: "error.message"] as? String)?.contains("cannot be repaired") == true)
        let checked = try await CLI.validate(collected.stdout, against: "result.schema.json")
        #expect(checked.valid, "\(checked.report)")
    }
}
