import CommandPipeline
import CommandPipelineTesting
import Foundation
import PipelineTestSupport
import Synchronization
import Testing

/// The worked examples of Design/extending.md, as written there, so the document stays true.
@Suite struct ExtendingExampleTests {
    /// Keeps the ids of failed commands, for a retry list.
    final class FailedIDs: ResultSink {
        let name = "failed-ids"
        let priority = 5
        private let ids = Mutex<[String]>([])

        func enabled(for delivery: ResultDelivery) -> Bool { delivery.status == .failed }

        func deliver(_ delivery: ResultDelivery) async throws {
            ids.withLock { $0.append(delivery.commandID) }
        }

        var collected: [String] { ids.withLock { $0 } }
    }

    /// As in the document, but timed by a manual clock, which never moves here: no timeout can
    /// fire because a loaded test machine was slow.
    @Test func theSinkExample() async throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("results.jsonl").path
        let commands = [
            PlannedCommand(id: "ok", plan: ExecutionPlan(call: APICall(model: "mock", parts: [.text("hi")]))),
            PlannedCommand(id: "empty", plan: ExecutionPlan(calls: [])),
        ]
        let failed = FailedIDs()
        let dispatcher = SinkDispatcher(sinks: [failed, try JSONLinesFileSink(path: path)], timeout: .seconds(10), clock: ManualClock())
        let engine = PipelineEngine(provider: MockProvider.make())
        let runID = ResultDelivery.makeRunID()
        for (index, command) in commands.enumerated() {
            let outcome = await engine.run(command, index: index)
            dispatcher.submit(ResultDelivery(runID: runID, outcome: outcome, index: index))
        }
        let problems = await dispatcher.finish(within: .seconds(30))
        #expect(problems.isEmpty)
        #expect(failed.collected == ["empty"])
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2 && lines[0].hasPrefix(#"{"id":"ok","index":0,"status":"succeeded""#))
    }

    @Test func theCatalogExample() throws {
        let json = """
            {
              "models": {
                "local-llama-70b": {
                  "provider": "openai",
                  "context_window": 131072,
                  "max_output_tokens": 8192,
                  "input_modalities": ["text"],
                  "system_instruction": true,
                  "streaming": true,
                  "min_cache_tokens": null,
                  "prices": {"input": 0.20, "cached_input": 0.20, "output": 0.60, "batch_discount": 0},
                  "source": "our GPU bill, 2026-11"
                },
                "gpt-4o": {
                  "prices": {"input": 2.00, "output": 8.00}
                }
              }
            }
            """
        let fromFile = try CatalogFile.parse(Array(json.utf8), over: .builtin).get()
        var inSwift = ModelCatalog.builtin
        inSwift.add(ModelInfo(
            name: "local-llama-70b", provider: "openai", contextWindow: 131_072, maxOutputTokens: 8192,
            inputModalities: [.text], prices: ModelPrices(input: 0.20, cachedInput: 0.20, output: 0.60),
            source: "our GPU bill, 2026-11"))
        #expect(fromFile.info(for: "local-llama-70b") == inSwift.info(for: "local-llama-70b"))
        #expect(fromFile.info(for: "gpt-4o")?.prices?.cachedInput == 1.25)
    }
}
