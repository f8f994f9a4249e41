import CommandPipeline
import Foundation
import PipelineTestSupport
import Testing

/// `pipeline --events` against servers nobody here wrote: FakeAI streams OpenAI chunks, and
/// llmock streams OpenAI, Anthropic and Gemini with scripted stream faults. A broken stream
/// must end in a failed terminal event (retried while no delta was delivered), never in a
/// success.
@Suite struct EventsPeerTests {
    func events(_ arguments: [String], _ input: String) async throws -> (PipelineRun, EventStreamCheck) {
        let run = try await runPipeline(["--events", "--quiet"] + arguments, stdin: input)
        let check = EventStreamCheck(run.stdout)
        #expect(check.problems.isEmpty, "\(check.problems)\n\(run.stderr)")
        return (run, check)
    }

    func deltas(_ check: EventStreamCheck, _ id: String) -> [String] {
        (check.commands[id] ?? []).filter { $0["type"] as? String == "text_delta" }.compactMap { $0["text"] as? String }
    }

    func attempts(_ record: [String: Any]?) -> Int? {
        ((record?["telemetry"] as? [String: Any])?["calls"] as? [[String: Any]])?.first?["attempts"] as? Int
    }

    @Test func fakeAIStreamsDeltasThatMakeEachAnswer() async throws {
        let base = try Peers.fakeAI.get()
        let input = """
            {"id":"one","model":"gpt-4o-mini","prompt":"Tell me a short story about a lighthouse."}
            {"id":"fan","model":"gpt-4o-mini","prompts":["Name a colour.","Name a fruit."]}
            """
        let (run, check) = try await events(["--provider", "openai", "--base-url", base.absoluteString, "--capabilities", "streaming"], input)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(check.types("one").last == "command_succeeded" && check.types("fan").last == "command_succeeded")
        #expect(deltas(check, "one").count > 1, "FakeAI streams in pieces")
        let (valid, report) = try await validateJSONLines(run.stdout, against: "event.schema.json")
        #expect(valid, "\(report)")
    }

    /// A stream fault before any delta is retried and the command succeeds; after a delta the
    /// command fails for good with the delivered text kept and marked.
    @Test(arguments: ["disconnect", "truncate", "malformed"])
    func openAIStreamFaultsFromLLMock(fault: String) async throws {
        let mock = try LLMock.start()
        let early = "gpt-early-\(fault)-\(UUID().uuidString.prefix(6))", late = "gpt-late-\(fault)-\(UUID().uuidString.prefix(6))"
        let text = "alpha beta gamma delta epsilon zeta eta theta"
        // llmock takes one behaviour of each kind per request: the first request gets the fault and
        // the first reply, a retry the second reply.
        try await mock.script(model: early, [["type": "stream_fault", "kind": fault, "after_chunks": 0], ["type": "reply", "text": text], ["type": "reply", "text": text]])
        try await mock.script(model: late, [["type": "stream_fault", "kind": fault, "after_chunks": 3], ["type": "reply", "text": text], ["type": "reply", "text": text]])
        let input = """
            {"id":"early","model":"\(early)","prompt":"Go"}
            {"id":"late","model":"\(late)","prompt":"Go","fallback_model":"\(early)"}
            """
        let (run, check) = try await events(
            ["--provider", "openai", "--base-url", mock.origin.appendingPathComponent("v1").absoluteString, "--capabilities", "streaming",
             "--max-attempts", "3"], input)
        #expect(run.status == 1, "\(run.stderr)")

        #expect(check.types("early").last == "command_succeeded", "\(check.types("early"))")
        #expect(attempts(check.result("early")) == 2, "the fault came before any text: the call was tried again")
        #expect(deltas(check, "early").joined() == text)

        let broken = check.result("late")
        #expect(check.types("late").last == "command_failed", "\(check.types("late"))")
        #expect(!check.types("late").contains("fallback_started"), "an answer that has begun is not replaced")
        let error = broken?["error"] as? [String: Any]
        #expect((error?["details"] as? [String: Any])?["code"] as? String == "stream_interrupted", "\(String(describing: error))")
        #expect(error?["retryable"] as? Bool == false)
        #expect(attempts(broken) == 1)
        let partial = (broken?["responses"] as? [[String: Any]])?.first
        #expect(partial?["finish_reason"] as? String == "interrupted")
        let delivered = deltas(check, "late").joined()
        #expect(!delivered.isEmpty && partial?["text"] as? String == delivered && delivered != text)
        #expect(broken?[path: "usage.total_tokens"] is NSNull, "the cut stream sent no usage: unknown, not 0: \(String(describing: broken?["usage"]))")
    }

    /// A stalled stream meets the per-call timeout: retried before any delta, final after one.
    /// (The timeout leaves a loaded machine time to deliver the first pieces before it: with
    /// 1 s, a full suite on two cores once saw the late call time out before its first delta.)
    @Test func aStalledStreamTimesOut() async throws {
        let mock = try LLMock.start()
        let early = "gpt-stall-early-\(UUID().uuidString.prefix(6))", late = "gpt-stall-late-\(UUID().uuidString.prefix(6))"
        try await mock.script(model: early, [
            ["type": "stream_fault", "kind": "stall", "after_chunks": 0, "stall_seconds": 30], ["type": "reply", "text": "stalled"],
            ["type": "reply", "text": "after the stall"],
        ])
        try await mock.script(model: late, [
            ["type": "stream_fault", "kind": "stall", "after_chunks": 3, "stall_seconds": 30], ["type": "reply", "text": "one two three four five six"],
            ["type": "reply", "text": "never"],
        ])
        let input = """
            {"id":"early","model":"\(early)","prompt":"Go"}
            {"id":"late","model":"\(late)","prompt":"Go"}
            """
        let (_, check) = try await events(
            ["--provider", "openai", "--base-url", mock.origin.appendingPathComponent("v1").absoluteString, "--capabilities", "streaming",
             "--max-attempts", "2", "--call-timeout", "5"], input)
        #expect(check.types("early").last == "command_succeeded", "\(check.types("early"))")
        #expect(attempts(check.result("early")) == 2)
        #expect(deltas(check, "early").joined() == "after the stall")
        #expect(check.types("late").last == "command_failed")
        #expect(attempts(check.result("late")) == 1, "text had arrived: the timeout ends the call")
        let error = check.result("late")?["error"] as? [String: Any]
        #expect(error?["kind"] as? String == "timeout")
        #expect((error?["details"] as? [String: Any])?["code"] as? String == "stream_interrupted")
    }

    @Test func anthropicAndGeminiStreamThroughTheCLI() async throws {
        let mock = try LLMock.start()
        let model = "gemini-events-\(UUID().uuidString.prefix(6))"
        try await mock.script(model: model, [["type": "reply", "text": "one two three four"]])
        let (gemini, geminiCheck) = try await events(
            ["--provider", "gemini", "--base-url", mock.geminiBase.absoluteString], #"{"id":"g","model":"\#(model)","prompt":"Count"}"#)
        #expect(gemini.status == 0, "\(gemini.stderr)")
        #expect(deltas(geminiCheck, "g").joined() == "one two three four")

        let anthropic = try Peers.llmockAnthropic.get().appendingPathComponent("anthropic")
        let (run, check) = try await events(
            ["--provider", "anthropic", "--base-url", anthropic.absoluteString, "--capabilities", "generation,streaming"],
            #"{"id":"a","model":"claude-sonnet-4-6","prompt":"Hello there"}"#)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(deltas(check, "a").count > 1)
        #expect(deltas(check, "a").joined() == "Hello! You said: Hello there")
    }
}
