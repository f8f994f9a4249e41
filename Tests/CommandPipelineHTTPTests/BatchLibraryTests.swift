import CommandPipeline
import CommandPipelineBatch
import Foundation
import PipelineTestSupport
import Testing

/// Batch through the library, as a Swift user drives it (`BatchRun`): submit, status, collect,
/// retry, over the mock's batch service. Two mocks share one job store (`batchDirectory`), as
/// two processes share a provider: one whose model "flaky" is down or whose requests hang, one
/// that answers — so a retry can succeed where the first jobs failed. The mock ends a job at
/// once (no delay) unless told otherwise.
@Suite struct BatchLibraryTests {
    struct Setup {
        var dir: URL
        var job: String { dir.appendingPathComponent("job.json").path }
        var store: String { dir.appendingPathComponent("jobs").path }

        init() throws { dir = try temporaryDirectory() }

        func provider(failing: Set<String> = [], faults: MockFaultPlan? = nil, delay: Duration = .zero) -> any GenerationCapability {
            var configuration = MockConfiguration(failingModels: failing, faults: faults)
            configuration.batchDirectory = store
            configuration.batchDelay = delay
            return MockProvider.make(configuration)
        }

        func run(_ provider: any GenerationCapability) throws -> BatchRun { try BatchRun(jobFile: job, provider: provider) }

        /// Every record of a collect, in the order it handed them.
        func collect(_ provider: any GenerationCapability) async throws -> (summary: BatchCollection, records: [[String: Any]], lines: [String]) {
            var records: [[String: Any]] = []
            var lines: [String] = []
            let summary = try await run(provider).collect { record in
                records.append((try? JSONSerialization.jsonObject(with: Data(record.line))) as? [String: Any] ?? [:])
                lines.append(String(decoding: record.line, as: UTF8.self))
                return true
            }
            return (summary, records, lines)
        }

        func storedJobs() throws -> Int { try FileManager.default.contentsOfDirectory(atPath: store).count }
    }

    /// The mock's batch service whose submit fails: before anything is sent, or after the job
    /// was made (its answer lost on the way back, as after a timeout).
    struct FailingSubmit: GenerationCapability, BatchCapability {
        let base: any GenerationCapability
        let inner: any BatchCapability
        let error: APIError
        let afterSending: Bool
        var providerName: String { base.providerName }
        func generate(_ request: GenerationRequest) async throws -> GenerationResponse { try await base.generate(request) }
        var batchLimits: BatchLimits { inner.batchLimits }
        func batchSize(of request: BatchRequest) throws -> Int { try inner.batchSize(of: request) }
        func submitBatch(_ requests: [BatchRequest], marker: BatchMarker) async throws -> BatchJob {
            if afterSending { _ = try await inner.submitBatch(requests, marker: marker) }
            throw error
        }
        func findBatch(_ marker: BatchMarker) async throws -> BatchLookup { try await inner.findBatch(marker) }
        func batchStatus(_ jobID: String) async throws -> BatchJob { try await inner.batchStatus(jobID) }
        func batchResults(_ jobID: String) async throws -> [BatchResult] { try await inner.batchResults(jobID) }
        func cancelBatch(_ jobID: String) async throws -> BatchJob { try await inner.cancelBatch(jobID) }
    }

    /// Seven commands, eight requests: every third command on model "flaky"; command 4 fans out to two calls.
    static let input: String = (0..<7).map { i -> String in
        if i == 4 { return #"{"id":"c4","model":"m","prompts":["first 4","second 4"]}"# }
        return #"{"id":"c\#(i)","model":"\#(i % 3 == 0 ? "flaky" : "m")","prompt":"item \#(i)"}"#
    }.joined(separator: "\n")

    @Test func submitCollectRetryAndCollectAgainThroughTheLibrary() async throws {
        let setup = try Setup()
        let down = setup.provider(failing: ["flaky"])
        let submitted = try await setup.run(down).submit(BatchInput(Array(Self.input.utf8)), maxRequestsPerJob: 3)
        #expect(submitted.commands == 7 && submitted.rejected == 0)
        #expect(submitted.jobs.count == 3 && submitted.jobs.allSatisfy { $0 != nil })
        let progress = try await setup.run(down).status()
        #expect(progress.allEnded && progress.failed == 3 && progress.succeeded == 5, "\(progress.line())")

        let first = try await setup.collect(down)
        #expect(first.summary.commands == 7 && first.summary.failed == 3)
        #expect(first.records.map { $0["id"] as? String } == (0..<7).map { "c\($0)" })
        #expect(first.records.map { $0["status"] as? String } == ["failed", "succeeded", "succeeded", "failed", "succeeded", "succeeded", "failed"])
        // Written as run writes a record, with the batch keys first in the telemetry and run's input_hash last.
        for (line, record) in zip(first.lines, first.records) {
            #expect(line.contains(#""telemetry":{"batch":true,"batch_job":""#), "\(line)")
            #expect(line.hasSuffix(#","input_hash":"\#(record["input_hash"] as? String ?? "?")"}"# + "\n"), "\(line)")
        }
        let firstCommand = Self.input.split(separator: "\n")[0]
        #expect(first.records[0]["input_hash"] as? String == InputDigest.of(Array(firstCommand.utf8)), "run's digest of the command's bytes")

        // The retry goes to a provider that answers: only the three failed requests are sent.
        let up = setup.provider()
        let jobsBefore = try setup.storedJobs()
        let retried = try await setup.run(up).retry()
        #expect(retried.requests == 3 && retried.commands == 3 && retried.jobs.count == 1 && !retried.resumed)
        #expect(try setup.storedJobs() == jobsBefore + 1)
        let recorded = try #require(try BatchRun.jobFile(at: setup.job))
        #expect(recorded.chunks.last?.requestIDs == ["r0c0", "r3c0", "r6c0"])

        // As if killed between sending the retry's job and recording it: the next retry finds
        // the job by its marker and records it; nothing is sent twice.
        var file = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: setup.job))) as? [String: Any])
        var chunks = try #require(file["chunks"] as? [[String: Any]])
        chunks[chunks.count - 1]["state"] = "submitting"
        chunks[chunks.count - 1]["job_id"] = NSNull()
        file["chunks"] = chunks
        try JSONSerialization.data(withJSONObject: file).write(to: URL(fileURLWithPath: setup.job))
        await #expect(throws: BatchError.self, "an in-doubt retry job is not collected") { _ = try await setup.collect(up) }
        var notes: [String] = []
        let resumed = try await setup.run(up).retry { notes.append($0) }
        #expect(resumed.resumed && resumed.jobs == retried.jobs && resumed.requests == 3)
        #expect(notes.contains { $0.contains("already submitted as \(retried.jobs[0])") }, "\(notes)")
        #expect(try setup.storedJobs() == jobsBefore + 1)

        let second = try await setup.collect(up)
        #expect(second.summary.commands == 7 && second.summary.failed == 0)
        #expect(second.records.map { $0["id"] as? String } == (0..<7).map { "c\($0)" }, "one line per command, input order")
        for (i, record) in second.records.enumerated() {
            let job = record[path: "telemetry.batch_job"] as? String
            #expect((i % 3 == 0) == (job == retried.jobs[0]), "command \(i) takes its answer from \(job ?? "nil")")
            let text = (record["responses"] as? [[String: Any]])?.first?["text"] as? String
            let model = i % 3 == 0 ? "flaky" : "m"
            if i != 4 { #expect(text == (try await up.generate(GenerationRequest(model: model, parts: [.text("item \(i)")]))).text) }
        }
        // Nothing failed any more: no job is sent.
        let nothing = try await setup.run(up).retry()
        #expect(nothing.requests == 0 && nothing.jobs.isEmpty)
        #expect(try setup.storedJobs() == jobsBefore + 1)
    }

    @Test func expiredRequestsAreRetriedAndTheLatestFailureShowsUntilAnAnswerComes() async throws {
        let setup = try Setup()
        // Every request hangs: the job expires with no answer.
        let hanging = setup.provider(faults: MockFaultPlan(hang: 1))
        _ = try await setup.run(hanging).submit(BatchInput(Array(Self.input.utf8)))
        let expired = try await setup.collect(hanging)
        #expect(expired.summary.failed == 7)
        #expect(expired.records.allSatisfy { $0[path: "error.details.code"] as? String == "batch_expired" }, "\(expired.records.first ?? [:])")

        // First retry: every request goes again, to a provider where "flaky" is down: its
        // requests fail again (the latest failure shows), the others answer.
        let down = setup.provider(failing: ["flaky"])
        let first = try await setup.run(down).retry()
        #expect(first.requests == 8 && first.commands == 7)
        let partly = try await setup.collect(down)
        #expect(partly.records.map { $0["status"] as? String } == ["failed", "succeeded", "succeeded", "failed", "succeeded", "succeeded", "failed"])
        #expect(partly.records[0][path: "error.details.code"] as? String == "unavailable", "the latest failure: \(partly.records[0])")
        #expect((partly.records[4]["responses"] as? [Any])?.count == 2, "both calls of the fan-out answered in the retry")

        // Second retry: only the three still failing.
        let up = setup.provider()
        #expect(try await setup.run(up).retry().requests == 3)
        let done = try await setup.collect(up)
        #expect(done.summary.failed == 0 && done.records.count == 7)
        #expect(done.records.map { $0["id"] as? String } == (0..<7).map { "c\($0)" })
    }

    @Test func aRetryOrCollectBeforeEveryJobEndedIsRefused() async throws {
        let setup = try Setup()
        let slow = setup.provider(failing: ["flaky"], delay: .seconds(3600))
        _ = try await setup.run(slow).submit(BatchInput(Array(Self.input.utf8)))
        let early = await #expect(throws: BatchError.self) { _ = try await setup.run(slow).retry() }
        #expect(early?.kind == .notFinished && early?.message.contains("wait until every job has ended") == true, "\(String(describing: early))")
        let collecting = await #expect(throws: BatchError.self) { _ = try await setup.collect(slow) }
        #expect(collecting?.kind == .notFinished)
    }

    /// A submit that failed after the provider may have made the job (a timeout) leaves the chunk
    /// in doubt: the next submit finds the job by its marker and sends nothing again. One refused
    /// before sending (a 400) is planned again and sent by the next submit.
    @Test func aSubmitThatMayHaveReachedTheProviderIsLookedUpNotSentTwice() async throws {
        let input = BatchInput(Array(Self.input.utf8))
        let setup = try Setup()
        let mock = setup.provider()
        let lost = FailingSubmit(
            base: mock, inner: try #require(mock.batch), error: APIError(.timeout, "no answer within 30 s", provider: "mock", retryable: true),
            afterSending: true)
        await #expect(throws: BatchError.self) { _ = try await setup.run(lost).submit(input, maxRequestsPerJob: 10) }
        #expect(try setup.storedJobs() == 1)
        #expect(try String(contentsOfFile: setup.job, encoding: .utf8).contains(#""state":"submitting""#))
        let again = try await setup.run(mock).submit(input, maxRequestsPerJob: 10)
        #expect(again.jobs.count == 1 && again.jobs.allSatisfy { $0 != nil })
        #expect(try setup.storedJobs() == 1, "the job made before the timeout was found by its marker, not sent again")

        let other = try Setup()
        let mock2 = other.provider()
        let refused = FailingSubmit(
            base: mock2, inner: try #require(mock2.batch),
            error: APIError(.providerError, "HTTP 400 from http://127.0.0.1/v1/batches: bad request", provider: "mock"), afterSending: false)
        await #expect(throws: BatchError.self) { _ = try await other.run(refused).submit(input, maxRequestsPerJob: 10) }
        #expect(try String(contentsOfFile: other.job, encoding: .utf8).contains(#""state":"planned""#))
        _ = try await other.run(mock2).submit(input, maxRequestsPerJob: 10)
        #expect(try other.storedJobs() == 1)
    }
}
