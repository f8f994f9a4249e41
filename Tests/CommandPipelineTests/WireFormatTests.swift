import CommandPipeline
import Foundation
import PipelineTestSupport
import Testing

@Suite struct JSONParserTests {
    @Test(arguments: [
        (#"{"a":[1,2.5,-3e2,true,false,null,"x\n\u00e9\ud83d\ude00"]}"#, #"{"a":[1,2.5,-300.0,true,false,null,"x\né😀"]}"#),
        (#"  "plain"  "#, #""plain""#),
        (#"{"b":1,"a":2}"#, #"{"b":1,"a":2}"#),
    ])
    func parsesAndSerializesKeepingKeyOrder(input: String, expected: String) throws {
        let value = try JSONParser.parse(input)
        #expect(JSONSerializer.serialize(value) == expected)
        #expect(try JSONParser.parse(JSONSerializer.serialize(value)) == value)
    }

    @Test(arguments: [
        ("{\"a\":}", 5, "expected a value"),
        ("[1,2", 4, "end of input"),
        ("{\"a\" 1}", 5, "expected ':'"),
        ("01", 1, "leading zeros"),
        ("\"a\u{01}\"", 2, "control character"),
        ("{} x", 3, "after the JSON value"),
    ])
    func reportsTheOffsetOfSyntaxErrors(input: String, offset: Int, message: String) {
        do {
            _ = try JSONParser.parse(input)
            Issue.record("accepted invalid JSON \(input)")
        } catch {
            #expect(error.offset == offset)
            #expect(error.message.contains(message))
        }
    }

    /// Integers are written digit by digit, without `String(value)`: every edge as `String` writes it.
    @Test func writesIntegersAsDecimalText() {
        var values = [0, 1, 9, 10, 11, 99, 100, -1, -9, -10, 12_345, -98_765, 1_000_000_007, Int.max, Int.min, Int.max - 1, Int.min + 1]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 { values.append(Int.random(in: .min ... .max, using: &generator) >> Int.random(in: 0...62, using: &generator)) }
        for value in values {
            var out: [UInt8] = [0x40]
            JSONSerializer.writeInt(value, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == "@\(value)")
        }
        var literal: [UInt8] = []
        JSONSerializer.raw(#"{"a":"#, to: &literal)
        JSONSerializer.raw("é", to: &literal)
        #expect(literal == Array(#"{"a":é"#.utf8))
    }

    @Test func escapesWhatJSONRequires() {
        #expect(JSONSerializer.serialize(.string("a\"b\\c\n\u{1}")) == #""a\"b\\c\n\u0001""#)
        #expect(JSONSerializer.serialize(.double(.nan)) == "null")
    }
}

@Suite struct CommandDecodingTests {
    func decode(_ json: String, position: Int = 1) throws -> Result<PlannedCommand, CommandRejection> {
        WireFormat.command(from: try JSONParser.parse(json), position: position)
    }

    @Test func shorthandMakesOneCallPerPrompt() throws {
        let command = try decode(#"{"model":"m","prompts":["a","b"],"system":"terse","files":["x.pdf"],"metadata":{"k":1}}"#, position: 7).get()
        #expect(command.id == "cmd-7")
        #expect(command.plan.calls.map(\.parts) == [[.text("a")], [.text("b")]])
        #expect(command.plan.calls.allSatisfy { $0.config.systemInstruction == "terse" })
        #expect(command.plan.sharedParts == [.filePlaceholder(FilePlaceholder(path: "x.pdf"))])
        #expect(command.metadata == ["k": 1])
    }

    @Test func shorthandFallbackModelCopiesTheCall() throws {
        let command = try decode(#"{"id":"x","model":"m","prompt":"p","fallback_model":"lite"}"#).get()
        #expect(command.plan.fallbackCall == APICall(model: "lite", parts: [.text("p")]))
    }

    @Test func theFullWireExampleDecodes() throws {
        let json = #"""
        {"id":"paper-42","plan":{"calls":[{"model":"gemini-2.5-flash","parts":[{"type":"text","text":"List the three main claims."}],
          "config":{"system_instruction":"Be terse.","temperature":0.2,"max_tokens":512}}],
          "shared_parts":[{"type":"file_placeholder","path":"papers/42.pdf","mime_type":"application/pdf"}],
          "fallback_call":{"model":"gemini-2.5-flash-lite","parts":[{"type":"text","text":"List the three main claims."}]},
          "upload_tasks":[],"cache":{"ttl_seconds":3600},"rate_constraint":{"requests_per_minute":60,"tokens_per_minute":1000000}},
         "token_estimate":{"min_tokens":800,"expected_tokens":1200,"max_tokens":2000,"confidence":0.8},
         "per_call_estimates":[],"metadata":{"batch":"nov-21"}}
        """#
        let command = try decode(json).get()
        #expect(command.id == "paper-42")
        #expect(command.plan.calls[0].config.temperature == 0.2)
        #expect(command.plan.calls[0].config.maxTokens == 512)
        #expect(command.plan.cache == CachePlan(ttlSeconds: 3600))
        #expect(command.plan.rateConstraint == RateConstraint(requestsPerMinute: 60, tokensPerMinute: 1_000_000))
        #expect(command.tokenEstimate?.confidence == 0.8)
        #expect(command.metadata == ["batch": "nov-21"])

        // The same command through Codable, and back.
        let viaCodable = try JSONDecoder().decode(PlannedCommand.self, from: Data(json.utf8))
        #expect(viaCodable == command)
        let reencoded = try JSONDecoder().decode(PlannedCommand.self, from: JSONEncoder().encode(command))
        #expect(reencoded == command)
    }

    @Test func everyProblemIsReportedWithItsPath() throws {
        let json = #"{"id":"bad","plan":{"calls":[{"model":"m","parts":[{"type":"txt","text":"a"}]},{"model":"m","parts":[{"type":"text"}],"config":{"temperature":"hot","colour":"red"}}]}}"#
        let rejection = try #require(try decode(json).failure)
        #expect(rejection.id == "bad")
        let paths = rejection.issues.map(\.path)
        #expect(paths == ["plan.calls[0].parts[0].type", "plan.calls[1].parts[0].text", "plan.calls[1].config.colour", "plan.calls[1].config.temperature"])
        #expect(rejection.issues[0].message.contains("unknown part type 'txt'"))
        #expect(rejection.issues[2].message.contains("unknown key 'colour'"))
        #expect(rejection.error.kind == .invalidCommand)
        #expect(rejection.error.path == "plan.calls[0].parts[0].type")
    }

    @Test(arguments: [
        (#"{"plan":{"calls":[]}}"#, "plan.calls", "at least one call"),
        (#"{"model":"m"}"#, "", "needs 'prompt' or 'prompts'"),
        (#"{"model":"m","prompt":"p","bogus":1}"#, "bogus", "unknown key 'bogus'"),
        (#"{"hello":1}"#, "", "needs 'plan'"),
        (#"[1]"#, "", "expected a command object"),
        (#"{"model":"m","prompts":["a","b"],"fallback_model":"f"}"#, "fallback_model", "single 'prompt'"),
        (#"{"plan":{"calls":[{"model":"m","parts":[{"type":"inline","mime_type":"x","data":"%%%"}]}]}}"#, "plan.calls[0].parts[0].data", "base64"),
        (#"{"plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"a"}]}],"upload_tasks":[{"part_index":0}]}}"#, "plan.upload_tasks[0].part_index", "file_placeholder"),
        (#"{"plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"a"}]}]},"token_estimate":{"min_tokens":5,"expected_tokens":1,"max_tokens":9}}"#, "token_estimate", "min_tokens ≤ expected_tokens"),
    ])
    func invalidCommandsNameTheField(json: String, path: String, message: String) throws {
        let rejection = try #require(try decode(json).failure)
        #expect(rejection.issues.first?.path == path)
        #expect(rejection.issues.first?.message.contains(message) == true, "\(rejection.issues)")
    }

    @Test func codableReportsTheFirstProblemPath() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(PlannedCommand.self, from: Data(#"{"plan":{"calls":[]}}"#.utf8))
        }
    }
}

@Suite struct ResultRecordTests {
    @Test func succeededRecordsHaveEveryKeyOfTheContract() async throws {
        let engine = PipelineEngine(provider: MockProvider.make())
        let finalized = try #require(await engine.execute(command("x", prompts: ["Hello"])).success)
        let record = try #require(WrittenRecords.succeeded(finalized, index: 3).objectValue)
        #expect(record.keys == ["id", "index", "status", "responses", "usage", "telemetry", "metadata"])
        #expect(record["status"] == "succeeded")
        let telemetry = try #require(record["telemetry"]?.objectValue)
        #expect(telemetry.keys == ["provider", "used_fallback", "primary_error", "retries", "retry_wait_ms", "calls", "durations_ms", "uploads", "cache", "token_validation", "cost"])
        #expect(telemetry["cache"] == .null)
        #expect(record["responses"]?.arrayValue?.first?.objectValue?["call_index"] == 0)
    }

    @Test func failedRecordsCarryPartialResponsesAndFailedCalls() async throws {
        let engine = PipelineEngine(provider: MockProvider.make(MockConfiguration(failingModels: ["bad"])))
        let plan = ExecutionPlan(calls: [APICall(model: "ok", parts: [.text("a")]), APICall(model: "bad", parts: [.text("b")])])
        let outcome = await engine.run(PlannedCommand(id: "p", plan: plan))
        let record = try #require(WrittenRecords.record(outcome, index: 0).objectValue)
        #expect(record["status"] == "failed")
        #expect(record["error"]?.objectValue?["kind"] == "provider_error")
        #expect(record["error"]?.objectValue?["details"]?.objectValue?["failed_calls"] == [1])
        #expect(record["responses"]?.arrayValue?.count == 1)
    }
}

/// Durations are written from integer microseconds; the text must be exactly what formatting
/// the rounded `Double` gives, which is what every result and event carried before.
@Suite struct MillisecondsWriterTests {
    private func written(_ d: Duration) -> String {
        var out: [UInt8] = []
        ResultWriter.milliseconds(d, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private func reference(_ d: Duration) -> String {
        var out: [UInt8] = []
        JSONSerializer.writeDouble((d.milliseconds * 1000).rounded() / 1000, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func matchesTheDoubleTextEverywhere() {
        let fixed: [Duration] = [
            .zero, .nanoseconds(1), .nanoseconds(499), .nanoseconds(500), .microseconds(1), .microseconds(5), .microseconds(50),
            .microseconds(500), .microseconds(999), .microseconds(1000), .microseconds(1005), .microseconds(1050), .microseconds(1883),
            .milliseconds(2), .milliseconds(10), .seconds(1), .seconds(86_400), .seconds(999_999_999), .seconds(1_000_000_000),
            .seconds(Int64.max / 4), .nanoseconds(-1), .microseconds(-1), .milliseconds(-5),
        ]
        for d in fixed { #expect(written(d) == reference(d), "\(d)") }
        var generator = SeededRandom(seed: 42)
        for _ in 0..<20_000 {
            let d = Duration.nanoseconds(Int64.random(in: 0...5_000_000_000, using: &generator))
            #expect(written(d) == reference(d), "\(d)")
        }
        #expect(written(.microseconds(1005)) == "1.005")
        #expect(written(.zero) == "0.0")
        #expect(written(.microseconds(1500)) == "1.5")
    }
}

/// Issue 21 class 8: a number beyond a Double's range in a server's answer is clamped where it
/// is read; in commands (strict parsing) it stays an error.
@Suite struct OutOfRangeNumberTests {
    @Test func aServerNumberBeyondADoubleIsClampedACommandNumberIsRefused() throws {
        let answer = try JSONParser.parse(#"{"usage": {"prompt_tokens": 1e400, "other": -1e999}}"#)
        #expect(answer.objectValue?["usage"]?.objectValue?["prompt_tokens"] == .double(.greatestFiniteMagnitude))
        #expect(answer.objectValue?["usage"]?.objectValue?["other"] == .double(-.greatestFiniteMagnitude))
        #expect(throws: JSONParser.SyntaxError.self) { try JSONParser.parse(#"{"n": 1e400}"#, options: .strict) }
    }
}

/// A command rejected before it ran has no outcome, yet its two event lines are the ones the
/// writer makes for any command: the same keys, the same `t_ms` spelling (one writer, no
/// event laid out by hand in the CLI).
@Suite struct RejectedEventsTests {
    @Test func aRejectedCommandsEventsAreTheWritersOwn() throws {
        let error = APIError(.invalidCommand, "plan.calls must contain at least one call", path: "plan.calls")
        var record: [UInt8] = []
        ResultWriter.failed(error, id: "bad", index: 4, metadata: [:], telemetry: Telemetry(provider: "mock"), to: &record)
        var lines: [UInt8] = []
        EventWriter.rejected(id: "bad", index: 4, record: record, to: &lines)

        var expected: [UInt8] = []
        EventWriter.write(PipelineEvent(commandID: "bad", index: 4, seq: 0, elapsed: .zero, kind: .commandStarted), to: &expected)
        expected.append(0x0a)
        let outcome = CommandOutcome(result: .failure(error), state: ExecutionState(command: command("bad")), telemetry: Telemetry(provider: "mock"))
        EventWriter.write(PipelineEvent(commandID: "bad", index: 4, seq: 1, elapsed: .zero, kind: .commandFailed(outcome)), to: &expected) { _, out in
            out.append(contentsOf: record)
        }
        expected.append(0x0a)
        #expect(String(decoding: lines, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        let second = try JSONParser.parse(String(decoding: lines.split(separator: 0x0a)[1], as: UTF8.self))
        #expect(second.objectValue?["result"]?.objectValue?["error"]?.objectValue?["kind"] == .string("invalid_command"))
    }
}
