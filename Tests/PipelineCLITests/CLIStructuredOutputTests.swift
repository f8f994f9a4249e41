import Foundation
import Testing

/// Structured output from the CLI on the mock: schema answers offline, `parsed` in the result,
/// the shorthand's `response_format`, `--max-repairs` and its range, a schema outside the subset.
@Suite struct CLIStructuredOutputTests {
    static let format = #"{"type":"json_schema","json_schema":{"name":"claims","schema":{"type":"object","properties":{"title":{"type":"string","maxLength":40},"claims":{"type":"array","items":{"type":"string"},"minItems":3,"maxItems":3},"confidence":{"type":"number","minimum":0,"maximum":1}},"required":["title","claims","confidence"],"additionalProperties":false}}}"#

    @Test func theMockAnswersASchemaAndTheResultCarriesTheParsedValue() async throws {
        let input = [
            #"{"id":"full","plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"List the three main claims."}],"config":{"response_format":\#(Self.format)}}]}}"#,
            #"{"id":"short","model":"m","prompt":"List the three main claims.","response_format":\#(Self.format)}"#,
            #"{"id":"object","model":"m","prompt":"Anything","response_format":{"type":"json_object"}}"#,
            #"{"id":"plain","model":"m","prompt":"Hello"}"#,
        ].joined(separator: "\n")
        let run = try await CLI.run(["--quiet"], stdin: input)
        #expect(run.status == 0, "\(run.stderr)")
        let records = run.records
        #expect(records.map { $0["status"] as? String } == ["succeeded", "succeeded", "succeeded", "succeeded"])
        let parsed = try #require(records[0][path: "responses.0.parsed"] as? [String: Any])
        #expect(parsed["title"] as? String == "List the three main claims.")
        #expect((parsed["claims"] as? [String])?.count == 3)
        let confidence = try #require(parsed["confidence"] as? Double)
        #expect((0...1).contains(confidence))
        // The text is the JSON the value was parsed from; the shorthand gives the same answer.
        let text = try #require(records[0][path: "responses.0.text"] as? String)
        #expect(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary == parsed as NSDictionary)
        #expect(records[1][path: "responses.0.text"] as? String == text)
        #expect(records[2][path: "responses.0.parsed"] as? NSDictionary == ["echo": "Anything"] as NSDictionary)
        // Without a JSON format: no parsed key, no repairs key.
        #expect((records[3][path: "responses.0"] as? [String: Any])?["parsed"] == nil)
        #expect((records[0][path: "telemetry.calls.0"] as? [String: Any])?["repairs"] == nil)
        let checked = try await CLI.validate(run.stdout, against: "result.schema.json")
        #expect(checked.valid, "\(checked.report)")
    }

    @Test func theReadmeExampleGivesWhatTheReadmeShows() async throws {
        let readme = try String(contentsOf: CLI.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let command = #"{"model":"mock","prompt":"Three claims of the overview.","response_format":{"type":"json_schema","json_schema":{"name":"claims","schema":{"type":"object","properties":{"claims":{"type":"array","items":{"type":"string"},"minItems":3,"maxItems":3},"confidence":{"type":"number","minimum":0,"maximum":1}},"required":["claims","confidence"],"additionalProperties":false}}}}"#
        let shown = #"{"status":"succeeded","parsed":{"claims":["Three claims of the overview.","Three claims of the overview.","Three claims of the overview."],"confidence":1}}"#
        #expect(readme.contains("echo '\(command)'") && readme.contains(shown))
        let run = try await CLI.run(["--quiet"], stdin: command)
        #expect(run.records.first?["status"] as? String == "succeeded")
        let parsed = try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: Any]
        #expect(run.records.first?[path: "responses.0.parsed"] as? NSDictionary == parsed?["parsed"] as? NSDictionary)
    }

    @Test func aSchemaOutsideTheSubsetFailsItsCommandOnlyWithThePath() async throws {
        let bad = #"{"id":"bad","model":"m","prompt":"x","response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","properties":{"x":{"if":{"type":"string"}}}}}}}"#
        let good = #"{"id":"good","model":"m","prompt":"y","response_format":{"type":"json_object"}}"#
        let run = try await CLI.run(["--quiet"], stdin: bad + "\n" + good)
        #expect(run.status == 1)
        #expect(run.records.first?[path: "error.kind"] as? String == "invalid_command")
        #expect(run.records.first?[path: "error.path"] as? String == "plan.calls[0].config.response_format.json_schema.schema.properties.x.if")
        #expect((run.records.first?[path: "error.message"] as? String)?.contains("unsupported schema keyword 'if'") == true)
        #expect(run.records.last?["status"] as? String == "succeeded")
        let outOfRange = try await CLI.run(["--quiet"], stdin: #"{"id":"r","model":"m","prompt":"x","max_repairs":11,"response_format":{"type":"json_object"}}"#)
        #expect(outOfRange.records.first?[path: "error.path"] as? String == "plan.calls[0].config.max_repairs")
    }

    @Test func batchAnswersAreCheckedAndOneThatBreaksItsFormatFailsWithoutRepair() async throws {
        // The mock cannot make "Q" and five digits from the prompt: its answer breaks the pattern.
        let unmatchable = #"{"type":"json_schema","json_schema":{"name":"code","schema":{"type":"string","pattern":"^Q[0-9]{5}$"}}}"#
        let models = #"{"models": {"m": {"context_window": 100000, "max_output_tokens": 1000, "prices": {"input": 100000, "output": 300000, "batch_discount": 0.5}}}}"#
        let dir = try CLI.temporaryDirectory(files: ["models.json": models])
        let job = dir.appendingPathComponent("job.json")
        let input = [
            #"{"id":"ok","model":"m","prompt":"List the three main claims.","response_format":\#(Self.format)}"#,
            #"{"id":"broken","model":"m","prompt":"A code","response_format":\#(unmatchable)}"#,
        ].joined(separator: "\n")
        let submitted = try await CLI.run(["batch", "submit", "--job", job.path, "--quiet"], stdin: input)
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let collected = try await CLI.run(["batch", "collect", job.path, "--quiet", "--models", "models.json"], currentDirectory: dir)
        #expect(collected.status == 1, "\(collected.stderr)")
        let records = collected.records
        #expect(records.map { $0["status"] as? String } == ["succeeded", "failed"])
        #expect((records[0][path: "responses.0.parsed.claims"] as? [String])?.count == 3)
        #expect(records[1][path: "error.kind"] as? String == "invalid_output")
        #expect(records[1][path: "error.path"] as? String == "$")
        #expect((records[1][path: "error.message"] as? String)?.contains("cannot be repaired") == true)
        // The rejected answer is priced, at the batch price: "A code" is 2 prompt tokens ($0.2 → $0.1);
        // the answer "\"A code\"" 2 completion tokens ($0.6 → $0.3).
        let parts = try #require(records[1][path: "telemetry.cost.requests"] as? [[String: Any]])
        #expect(parts.count == 1 && parts[0]["request"] as? String == "failed_attempt")
        #expect(abs((parts[0]["usd"] as? Double ?? 0) - 0.4) < 1e-9, "\(parts)")
        let checked = try await CLI.validate(collected.stdout, against: "result.schema.json")
        #expect(checked.valid, "\(checked.report)")
    }

    @Test func maxRepairsIsRangeChecked() async throws {
        for value in ["-1", "11", "x", "99999999999999999999"] {
            let run = try await CLI.run(["--max-repairs", value], stdin: "")
            #expect(run.status == 2, "--max-repairs \(value)")
            #expect(run.stderr.contains("--max-repairs"), "\(run.stderr)")
        }
        let fine = try await CLI.run(["--max-repairs", "10", "--quiet"], stdin: #"{"model":"m","prompt":"x","response_format":{"type":"json_object"}}"#)
        #expect(fine.status == 0, "\(fine.stderr)")
        #expect(try await CLI.run(["--help"]).stdout.contains("--max-repairs N"))
    }

    /// The CLI gives the engine the keys it sees: a parsed value never carries one, even when
    /// the JSON spelled it with escapes (the mock echoes the prompt, the key decoded from them).
    @Test func theParsedValueIsRedactedWithTheKeysTheCLISees() async throws {
        let key = "sk-proj-" + String(repeating: "Zx8Cv7Bn", count: 8)
        let escaped = key.replacingOccurrences(of: "-", with: #"\u002d"#)
        var environment = ProcessInfo.processInfo.environment
        environment["OPENAI_API_KEY"] = key
        let input = #"{"id":"k","model":"m","prompt":"\#(escaped)","response_format":{"type":"json_object"}}"#
        let run = try await CLI.run(["--quiet"], stdin: input, environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        let parsed = try #require(run.records.first?[path: "responses.0.parsed"] as? [String: Any])
        #expect(parsed["echo"] as? String == "<redacted>")
        // So does batch collect.
        let dir = try CLI.temporaryDirectory()
        let job = dir.appendingPathComponent("job.json")
        let submitted = try await CLI.run(["batch", "submit", "--job", job.path, "--quiet"], stdin: input, environment: environment)
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let collected = try await CLI.run(["batch", "collect", job.path, "--quiet"], currentDirectory: dir, environment: environment)
        #expect(collected.status == 0, "\(collected.stderr)")
        #expect(collected.records.first?[path: "responses.0.parsed.echo"] as? String == "<redacted>")
    }
}
