import Foundation
import PipelineTestSupport
import Testing

/// Structured output end to end: the CLI's openai provider against `Tests/Tools/repair_server.py`,
/// which answers wrong JSON first and right JSON only after a repair in the conversation shape a
/// repair must have (the rejected answer as the assistant's message, then the correction); and
/// the official `openai` SDK's structured-output parsing against the same server.
@Suite struct RepairServerTests {
    static let schema = #"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"],"additionalProperties":false}"#

    static func command(_ id: String, model: String, extra: String = "") -> String {
        #"{"id":"\#(id)","plan":{"calls":[{"model":"\#(model)","parts":[{"type":"text","text":"Who?"}],"config":{"response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":\#(schema)}}\#(extra)}}]}}"#
    }

    static func records(_ stdout: String) -> [[String: Any]] {
        stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    static func requests(for model: String, _ base: URL) async throws -> [[String: Any]] {
        let all = try await peerJSON(base.deletingLastPathComponent().appendingPathComponent("requests")) as? [[String: Any]] ?? []
        return all.filter { $0["model"] as? String == model }
    }

    @Test func theCLIRepairsAWrongAnswerThroughTheOpenAIProvider() async throws {
        let base = try Peers.repair.get()
        // Models of this test's own (the server's request log is shared; it reads the part before ':').
        let input = [Self.command("fixed", model: "repairable:cli"), Self.command("prose", model: "prose:cli")].joined(separator: "\n")
        let run = try await runPipeline(["--provider", "openai", "--base-url", base.absoluteString, "--quiet"], stdin: input)
        #expect(run.status == 0, "\(run.stderr)\n\(run.stdout)")
        let records = Self.records(run.stdout)
        #expect(records.count == 2)
        for record in records {
            let response = (record["responses"] as? [[String: Any]])?.first
            #expect(response?["parsed"] as? NSDictionary == ["name": "Ada", "age": 36] as NSDictionary, "\(record)")
            let call = ((record["telemetry"] as? [String: Any])?["calls"] as? [[String: Any]])?.first
            #expect(call?["repairs"] as? Int == 1 && call?["attempts"] as? Int == 2, "\(record)")
        }
        let checked = try await validateJSONLines(run.stdout, against: "result.schema.json")
        #expect(checked.valid, "\(checked.report)")
        // What the server saw: the prompt, then prompt + rejected answer + correction, the same format.
        let seen = try await Self.requests(for: "repairable:cli", base)
        #expect(seen.count == 2)
        let first = seen[0]["messages"] as? [[String: Any]] ?? []
        let second = seen[1]["messages"] as? [[String: Any]] ?? []
        #expect(first.map { $0["role"] as? String } == ["user"])
        #expect(second.map { $0["role"] as? String } == ["user", "assistant", "user"])
        #expect(second[1]["content"] as? String == #"{"name": "Ada", "age": "thirty-six"}"#)
        #expect((second[2]["content"] as? String)?.contains("at $.age, expected an integer, found a string") == true, "\(second)")
        #expect(seen[1]["response_format"] as? NSDictionary == seen[0]["response_format"] as? NSDictionary)
        #expect(seen[1]["max_repairs"] == nil && seen[0]["max_repairs"] == nil)
    }

    @Test func anAnswerThatStaysWrongFailsWithInvalidOutput() async throws {
        let base = try Peers.repair.get()
        let run = try await runPipeline(
            ["--provider", "openai", "--base-url", base.absoluteString, "--quiet", "--max-repairs", "2"], stdin: Self.command("stubborn", model: "stubborn:cli"))
        #expect(run.status == 1, "\(run.stderr)")
        let record = try #require(Self.records(run.stdout).first)
        let error = record["error"] as? [String: Any]
        #expect(error?["kind"] as? String == "invalid_output", "\(record)")
        #expect(error?["path"] as? String == "$")
        #expect(error?["retryable"] as? Bool == false)
        #expect((error?["message"] as? String)?.contains("expected the required property 'age', which is missing") == true, "\(record)")
        let call = ((record["telemetry"] as? [String: Any])?["calls"] as? [[String: Any]])?.first
        #expect(call?["repairs"] as? Int == 2 && call?["attempts"] as? Int == 3, "\(record)")
        #expect(try await Self.requests(for: "stubborn:cli", base).count == 3)
        let checked = try await validateJSONLines(run.stdout, against: "result.schema.json")
        #expect(checked.valid, "\(checked.report)")
    }

    @Test func maxRepairsZeroFailsOnTheFirstWrongAnswerAndTheCallsOwnLimitWins() async throws {
        let base = try Peers.repair.get()
        let input = [Self.command("zero", model: "prose:zero"), Self.command("own", model: "repairable:own", extra: #","max_repairs":1"#)]
        let run = try await runPipeline(
            ["--provider", "openai", "--base-url", base.absoluteString, "--quiet", "--max-repairs", "0"], stdin: input.joined(separator: "\n"))
        #expect(run.status == 1, "\(run.stderr)")
        let record = try #require(Self.records(run.stdout).first)
        let error = record["error"] as? [String: Any]
        #expect(error?["kind"] as? String == "invalid_output" && error?["path"] as? String == "$", "\(record)")
        #expect((error?["message"] as? String)?.contains("does not parse") == true)
        #expect(try await Self.requests(for: "prose:zero", base).count == 1)
        // The call's config.max_repairs 1 wins over --max-repairs 0.
        #expect(Self.records(run.stdout).last?["status"] as? String == "succeeded", "\(run.stdout)")
    }

    @Test func aStreamedRepairShowsTheRejectedAnswerThenTheRepairedOne() async throws {
        let base = try Peers.repair.get()
        let run = try await runPipeline(
            ["--provider", "openai", "--base-url", base.absoluteString, "--quiet", "--events"], stdin: Self.command("streamed", model: "repairable:events"))
        #expect(run.status == 0, "\(run.stderr)\n\(run.stdout)")
        let check = EventStreamCheck(run.stdout)
        #expect(check.problems.isEmpty, "\(check.problems)")
        let events = check.commands["streamed"] ?? []
        let rejected = try #require(events.firstIndex { $0["type"] as? String == "attempt_failed" })
        #expect((events[rejected]["error"] as? [String: Any])?["kind"] as? String == "invalid_output")
        #expect(events[rejected]["will_retry"] as? Bool == true)
        func text(_ slice: ArraySlice<[String: Any]>) -> String {
            slice.filter { $0["type"] as? String == "text_delta" }.compactMap { $0["text"] as? String }.joined()
        }
        #expect(text(events[..<rejected]) == #"{"name": "Ada", "age": "thirty-six"}"#)
        #expect(text(events[rejected...]) == #"{"name": "Ada", "age": 36}"#)
        #expect(check.result("streamed")?[path: "responses.0.parsed.age"] as? Int == 36)
        let checked = try await validateJSONLines(run.stdout, against: "event.schema.json")
        #expect(checked.valid, "\(checked.report)")
    }

    @Test func theOpenAISDKParsesTheServersStructuredAnswers() throws {
        let base = try Peers.repair.get()
        let (status, text) = try runProcess(
            Peers.python, [Peers.packageRoot.appendingPathComponent("Tests/Tools/openai_repair_sdk_check.py").path, base.absoluteString], timeout: 120)
        #expect(status == 0, "the openai SDK could not use the repair server:\n\(text)")
        #expect(text.contains("OK"))
    }
}
