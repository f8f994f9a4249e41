import Foundation
import Testing

/// `--events`: the event stream of every command, as `WIRE-FORMAT.md` ("Events mode") fixes it.
@Suite struct CLIEventsTests {
    /// Plain-mode records without their timings, to compare runs.
    func untimed(_ record: [String: Any]?) -> String {
        guard var record else { return "nil" }
        record["telemetry"] = nil
        let data = (try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    @Test func theMockStreamsAndEveryCommandEndsInExactlyOneTerminalEvent() async throws {
        let input = """
        {"id":"hello","model":"mock","prompt":"Hello there wide world"}
        {"id":"fan","model":"mock","prompts":["one two","three four five"]}
        {"id":"rescued","model":"down","prompt":"Hi","fallback_model":"up"}
        {"id":"broken","model":"mock","prompt":"x","temperature":9}
        {"bad json
        """
        let run = try await CLI.run(["--events", "--mock-fail-model", "down", "--max-attempts", "2", "--quiet"], stdin: input)
        #expect(run.status == 1, "two commands fail: \(run.stderr)")
        let check = EventStreamCheck(run.stdout)
        #expect(check.problems.isEmpty, "\(check.problems)")
        #expect(Set(check.order) == ["hello", "fan", "rescued", "broken", "cmd-5"])
        #expect(check.types("hello").filter { $0 == "text_delta" }.count == 5, "the mock streams its answer word by word")
        #expect(check.types("fan").filter { $0 == "call_finished" }.count == 2)
        let rescued = check.types("rescued")
        #expect(rescued.contains("attempt_failed") && rescued.contains("waiting") && rescued.contains("fallback_started"))
        #expect(rescued.last == "command_succeeded")
        #expect(check.types("broken") == ["command_started", "command_failed"])
        #expect(check.types("cmd-5") == ["command_started", "command_failed"])
        #expect((check.result("broken")?["error"] as? [String: Any])?["kind"] as? String == "invalid_command")

        // Every line follows the event schema.
        let (valid, report) = try await CLI.validate(run.stdout, against: "event.schema.json")
        #expect(valid, "\(report)")

        // The terminal events carry what plain mode prints (timings aside).
        let plain = try await CLI.run(["--mock-fail-model", "down", "--max-attempts", "2", "--quiet"], stdin: input)
        let records = plain.lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
        for record in records {
            let id = try #require(record["id"] as? String)
            #expect(untimed(check.result(id)) == untimed(record), "\(id)")
            #expect(check.result(id)?["input_hash"] as? String == record["input_hash"] as? String)
        }
    }

    @Test func eventsFromManyConcurrentCommandsInterleaveButStayInOrderPerCommand() async throws {
        let input = (0..<300).map { #"{"id":"c\#($0)","model":"mock","prompt":"word \#($0) and more words"}"# }.joined(separator: "\n")
        let run = try await CLI.run(["--events", "--concurrency", "64", "--mock-latency-ms", "1", "--quiet"], stdin: input)
        #expect(run.status == 0, "\(run.stderr)")
        let check = EventStreamCheck(run.stdout)
        #expect(check.problems.isEmpty, "\(check.problems.prefix(5))")
        #expect(check.commands.count == 300)
        #expect(check.commands.values.allSatisfy { $0.last?["type"] as? String == "command_succeeded" })
    }

    @Test func eventsAreARunFlagOnly() async throws {
        let run = try await CLI.run(["validate", "--events"], stdin: #"{"model":"m","prompt":"x"}"#)
        #expect(run.status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("--events"))
    }
}
