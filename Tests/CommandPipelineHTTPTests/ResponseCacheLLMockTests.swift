import CommandPipeline
import Foundation
import PipelineTestSupport
import Testing

/// `--response-cache` against llmock (PyPI), counting the requests the server received: the
/// second run of the same commands sends none, on every provider llmock speaks.
@Suite struct ResponseCacheLLMockTests {
    @Test(arguments: ["openai", "gemini", "anthropic"])
    func aSecondRunSendsNoRequest(provider: String) async throws {
        let origin = try (provider == "anthropic" ? Peers.llmockAnthropic : Peers.llmock).get()
        let mock = LLMock(origin: origin)
        let base: String
        switch provider {
        case "openai": base = origin.appendingPathComponent("v1").absoluteString
        case "gemini": base = origin.appendingPathComponent("gemini").absoluteString
        default: base = origin.appendingPathComponent("anthropic").absoluteString
        }
        let model = "\(provider)-cache-\(UUID().uuidString.prefix(8))"
        let input = (0..<20).map { #"{"id":"c\#($0)","model":"\#(model)","prompt":"question \#($0)"}"# }.joined(separator: "\n")
            + "\n" + #"{"id":"fan","model":"\#(model)","prompts":["question 0","another"]}"# + "\n"
        let cache = try temporaryDirectory().appendingPathComponent("answers.db").path
        let arguments = ["--provider", provider, "--base-url", base, "--response-cache", cache, "--quiet"]
        let first = try await runPipeline(arguments, stdin: input)
        #expect(first.status == 0, "\(first.stderr)")
        let asked = try await mock.requests(model: model).count
        // "question 0" twice in one run: the second is answered by the first (in flight or stored).
        #expect(asked == 21, "20 distinct prompts and one more in the fan-out")
        func statuses(_ run: PipelineRun) -> [String] {
            run.records.flatMap { (($0["telemetry"] as? [String: Any])?["calls"] as? [[String: Any]] ?? []).compactMap { $0["response_cache"] as? String } }
        }
        #expect(statuses(first).filter { $0 == "stored" }.count == 21 && statuses(first).filter { $0 == "hit" }.count == 1)

        let second = try await runPipeline(arguments, stdin: input)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try await mock.requests(model: model).count == asked, "the second run sent no request")
        #expect(statuses(second) == Array(repeating: "hit", count: 22))
        func texts(_ run: PipelineRun) -> [String] {
            run.records.flatMap { ($0["responses"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String } }
        }
        #expect(texts(second) == texts(first))
    }
}
