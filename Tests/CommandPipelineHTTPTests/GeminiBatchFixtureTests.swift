import CommandPipeline
import CommandPipelineBatch
import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

/// Gemini's batch mode against the fixture (`Tests/Tools/gemini_fixture.py`), whose batch
/// endpoints google-genai drives in `GeminiFixtureTests.googlesOwnSDKCanUseTheFixture`. A
/// fixture batch moves PENDING → RUNNING → SUCCEEDED one `batches.get` at a time: no clock.
@Suite struct GeminiBatchFixtureTests {
    private func adapter(_ key: String, inlineBytes: Int? = nil) throws -> GeminiAdapter {
        var configuration = GeminiConfiguration(baseURL: try Peers.geminiFixture.get(), apiKey: APIKey(key), requestTimeout: 30)
        if let inlineBytes { configuration.batchInlineBytes = inlineBytes }
        return GeminiAdapter(configuration)
    }

    @Test(arguments: [false, true])
    func inlineAndFileJobsAnswerByKeyWithPerRequestFailures(asFile: Bool) async throws {
        let gemini = try adapter("batch-\(UUID().uuidString.prefix(8))", inlineBytes: asFile ? 1 : nil)
        let batch = try #require(gemini.batch)
        let requests = [
            BatchRequest(id: "a", request: GenerationRequest(model: "gemini-2.5-flash", parts: [.text("ctx"), .text("first")], config: GenerationConfig(systemInstruction: "terse"))),
            BatchRequest(id: "b", request: GenerationRequest(model: "gemini-2.5-flash", parts: [.text("please batch-fail")])),
            BatchRequest(id: "c", request: GenerationRequest(model: "gemini-2.5-flash", parts: [.text("third")])),
        ]
        let marker = BatchMarker(name: "pl-test-\(UUID().uuidString.prefix(8).lowercased())", requestCount: 3, notBefore: Date())
        let job = try await batch.submitBatch(requests, marker: marker)
        #expect(job.state == .pending)
        #expect(job.id.hasPrefix("batches/"))
        #expect(try await batch.findBatch(marker) == .found(job))
        #expect(try await batch.batchStatus(job.id).state == .running)
        let ended = try await batch.batchStatus(job.id)
        #expect(ended.state == .completed)
        #expect(ended.counts == BatchCounts(total: 3, succeeded: 2, failed: 1))
        let results = Dictionary(uniqueKeysWithValues: try await batch.batchResults(job.id).map { ($0.id, $0.outcome) })
        for id in ["a", "c"] {
            let live = try await gemini.generate(requests.first { $0.id == id }!.request)
            #expect(try results[id]?.get().text == live.text)
            #expect(try results[id]?.get().usage == live.usage)
        }
        #expect(results["b"]?.failure?.code == "INVALID_ARGUMENT")
    }

    @Test func aRunningJobIsCancelledAndOneModelPerJobIsEnforced() async throws {
        let batch = try #require(try adapter("batch-cancel-\(UUID().uuidString.prefix(8))").batch)
        #expect(batch.batchLimits.oneModelPerJob)
        let request = BatchRequest(id: "x", request: GenerationRequest(model: "gemini-2.5-flash", parts: [.text("x")]))
        let job = try await batch.submitBatch([request], marker: BatchMarker(name: "pl-never-ends-\(UUID().uuidString.prefix(6))", requestCount: 1, notBefore: Date()))
        #expect(try await batch.cancelBatch(job.id).state == .cancelled)
        await #expect(throws: APIError.self) { try await batch.cancelBatch(job.id) }
        await #expect(throws: APIError.self) {
            try await batch.submitBatch(
                [request, BatchRequest(id: "y", request: GenerationRequest(model: "gemini-2.5-pro", parts: [.text("y")]))],
                marker: BatchMarker(name: "pl-two-models", requestCount: 2, notBefore: Date()))
        }
        await #expect(throws: APIError.self) { try await batch.batchStatus("batches/../files") }
    }

    @Test func theCLIsKilledSubmitIsReconciledByDisplayNameAndCollectEqualsRun() async throws {
        let origin = try Peers.geminiFixture.get()
        let dir = try temporaryDirectory()
        let job = dir.appendingPathComponent("job.json").path
        let input = BatchLLMockTests.commands(17, models: ["gemini-2.5-flash", "gemini-2.5-pro"], tag: "gemini")
        var environment = ProcessInfo.processInfo.environment
        environment["GEMINI_API_KEY"] = "test-batch-cli-\(UUID().uuidString.prefix(8))"
        let provider = ["--provider", "gemini", "--base-url", origin.absoluteString]
        let submit = ["batch", "submit", "--job", job, "--max-requests-per-job", "4"] + provider
        var crashing = environment
        crashing["PIPELINE_BATCH_TEST_CRASH_AFTER_SUBMITS"] = "2"
        #expect(try await runPipeline(submit + ["--quiet"], stdin: input, environment: crashing).status == 137)
        let rerun = try await runPipeline(submit, stdin: input, environment: environment)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(rerun.stderr.contains("already submitted"))
        let jobs = try #require(rerun.records.first?["jobs"] as? [String])
        #expect(Set(jobs).count == jobs.count)
        let first = try await runPipeline(["batch", "collect", job, "--wait", "--poll-seconds", "0.05", "--timeout", "60", "--quiet"] + endpointArguments(provider), environment: environment)
        let second = try await runPipeline(["batch", "collect", job, "--quiet"] + endpointArguments(provider), environment: environment)
        let live = try await runPipeline(["--quiet"] + provider, stdin: input, environment: environment)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout == second.stdout)
        #expect(first.records.count == 17)
        #expect(BatchLLMockTests.texts(first) == BatchLLMockTests.texts(live))
        #expect(first.records.map { $0[path: "usage.total_tokens"] as? Int } == live.records.map { $0[path: "usage.total_tokens"] as? Int })
    }
}
