import CommandPipeline
import CommandPipelineBatch
import CommandPipelineTesting
import Foundation
import Testing

/// The mock's batch service: answers equal to `generate`'s, matched by id; the delay runs on an
/// injected clock; failures, hangs and cancellation; a directory store shared between two adapters
/// (as between two CLI processes).
@Suite struct MockBatchTests {
    private func batch(_ configuration: MockConfiguration) throws -> any BatchCapability {
        try #require(MockProvider.make(configuration).batch)
    }

    private func marker(_ name: String, _ count: Int) -> BatchMarker { BatchMarker(name: name, requestCount: count, notBefore: Date()) }

    @Test func resultsMatchGenerateAndEndOnlyAfterTheDelay() async throws {
        let clock = ManualClock()
        var configuration = MockConfiguration(failingModels: ["down"], clock: clock)
        configuration.batchDelay = .seconds(60)
        let provider = MockProvider.make(configuration)
        let batch = try #require(provider.batch)
        let requests = [
            BatchRequest(id: "a", request: GenerationRequest(model: "m", parts: [.text("ctx"), .text("first")])),
            BatchRequest(id: "b", request: GenerationRequest(model: "down", parts: [.text("second")])),
            BatchRequest(id: "c", request: GenerationRequest(model: "m", parts: [.text("third")], config: GenerationConfig(systemInstruction: "s"))),
        ]
        let job = try await batch.submitBatch(requests, marker: marker("job-1", 3))
        #expect(job.state == .running)
        #expect(job.counts == BatchCounts(total: 3, succeeded: 0, failed: 0))
        await #expect(throws: APIError.self) { try await batch.batchResults(job.id) }

        clock.advance(by: .seconds(59))
        #expect(try await batch.batchStatus(job.id).state == .running)
        clock.advance(by: .seconds(1))
        let ended = try await batch.batchStatus(job.id)
        #expect(ended.state == .completed)
        #expect(ended.counts == BatchCounts(total: 3, succeeded: 2, failed: 1))

        let results = Dictionary(uniqueKeysWithValues: try await batch.batchResults(job.id).map { ($0.id, $0.outcome) })
        for request in [requests[0], requests[2]] {
            let live = try await provider.generate(request.request)
            #expect(try results[request.id]?.get() == live)
        }
        #expect(results["b"]?.failure?.code == "unavailable")
        // An ended job cannot be cancelled.
        await #expect(throws: APIError.self) { try await batch.cancelBatch(job.id) }
    }

    @Test func cancellingBeforeTheEndCancelsEveryRequest() async throws {
        let clock = ManualClock()
        var configuration = MockConfiguration(clock: clock)
        configuration.batchDelay = .seconds(10)
        let batch = try batch(configuration)
        let job = try await batch.submitBatch([BatchRequest(id: "x", request: GenerationRequest(model: "m", parts: [.text("hi")]))], marker: marker("job-2", 1))
        #expect(try await batch.cancelBatch(job.id).state == .cancelled)
        clock.advance(by: .seconds(11))
        #expect(try await batch.batchStatus(job.id).state == .cancelled)
        #expect(try await batch.batchResults(job.id).isEmpty)
    }

    @Test func hangingRequestsExpireAndAreLeftOutOfTheResults() async throws {
        let batch = try batch(MockConfiguration(faults: MockFaultPlan(hang: 1)))
        let job = try await batch.submitBatch([BatchRequest(id: "x", request: GenerationRequest(model: "m", parts: [.text("hi")]))], marker: marker("job-3", 1))
        let status = try await batch.batchStatus(job.id)
        #expect(status.state == .expired)
        #expect(status.counts.failed == 1)
        #expect(try await batch.batchResults(job.id).isEmpty)
    }

    @Test func markersFindEarlierJobsAndIdsAreChecked() async throws {
        let batch = try batch(MockConfiguration())
        #expect(try await batch.findBatch(marker("m-1", 1)) == .absent)
        let job = try await batch.submitBatch([BatchRequest(id: "x", request: GenerationRequest(model: "m", parts: [.text("hi")]))], marker: marker("m-1", 1))
        #expect(try await batch.findBatch(marker("m-1", 1)) == .found(job))
        await #expect(throws: APIError.self) {
            try await batch.submitBatch(
                [BatchRequest(id: "x", request: GenerationRequest(model: "m", parts: [.text("a")])), BatchRequest(id: "x", request: GenerationRequest(model: "m", parts: [.text("b")]))],
                marker: marker("m-2", 2))
        }
        await #expect(throws: APIError.self) {
            try await batch.submitBatch([BatchRequest(id: "bad id!", request: GenerationRequest(model: "m", parts: [.text("a")]))], marker: marker("m-3", 1))
        }
        await #expect(throws: APIError.self) { try await batch.batchStatus("mockbatch-unknown") }
    }

    @Test func aDirectoryStoreIsSharedBetweenAdapters() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mockbatch-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = MockConfiguration()
        configuration.batchDirectory = directory
        let job = try await batch(configuration).submitBatch(
            [BatchRequest(id: "x", request: GenerationRequest(model: "m", parts: [.text("kept")]))], marker: marker("dir-1", 1))
        let other = try batch(configuration)
        #expect(try await other.batchStatus(job.id).state == .completed)
        #expect(try await other.batchResults(job.id).first?.outcome.get().text == "echo: kept")
        #expect(try await other.findBatch(marker("dir-1", 1)) == .found(job))
    }
}
