import CommandPipeline
import CommandPipelineHTTP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import PipelineTestSupport
import Testing

/// The webhook sink against a real local server (`Tests/Tools/webhook_server.py`) that records
/// every request it gets.
@Suite struct WebhookSinkTests {
    private func server() throws -> URL { try Peers.webhook.get() }

    /// What the server recorded for `name`.
    private func recorded(_ name: String) async throws -> [[String: Any]] {
        let (data, _) = try await URLSession.shared.data(from: try server().appendingPathComponent("requests/\(name)"))
        return try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
    }

    private func deliveries(_ count: Int, run: String = "run-7") -> [ResultDelivery] {
        (0..<count).map { i in
            let record = #"{"id":"c\#(i)","index":\#(i),"status":"succeeded","note":"ü\"q"}"#
            return ResultDelivery(runID: run, commandID: "c\(i)", index: i, status: .succeeded, record: Array(record.utf8))
        }
    }

    @Test func postsBatchesWithIdempotencyKeysAndTheRecordsAsTheyAre() async throws {
        let name = "batches-\(UUID().uuidString)"
        let sink = try WebhookSink(url: try server().appendingPathComponent("hook/\(name)"), batchSize: 2)
        let dispatcher = SinkDispatcher(sinks: [sink], clock: ManualClock())
        let sent = deliveries(3)
        for d in sent { dispatcher.submit(d) }
        #expect(await dispatcher.finish(within: .seconds(60)).isEmpty)

        let requests = try await recorded(name)
        #expect(requests.count == 2, "a batch of 2, then the remaining 1 at finish")
        #expect(requests.map { $0["idempotency_key"] as? String } == [
            WebhookSink.idempotencyKey(of: Array(sent[0..<2])), "run-7/c2",
        ])
        #expect((requests[0]["idempotency_key"] as? String)?.hasPrefix("run-7/batch-") == true)
        #expect(requests[0]["content_type"] as? String == "application/json")
        let first = try #require(requests[0]["body"] as? [String: Any])
        #expect(first["run_id"] as? String == "run-7")
        let results = try #require(first["results"] as? [[String: Any]])
        #expect(results.map { $0["command_id"] as? String } == ["c0", "c1"])
        #expect(results.map { $0["idempotency_key"] as? String } == ["run-7/c0", "run-7/c1"])
        #expect((results[1]["result"] as? [String: Any])?["note"] as? String == "ü\"q")
    }

    /// Two 503s (with `Retry-After: 0`, so no wait), then success: the engine's retry layer retries with the same key.
    @Test func retriesThroughTheRetryLayerWithTheSameKey() async throws {
        let name = "flaky-\(UUID().uuidString)"
        let policy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(1), jitter: 0)
        let sink = try WebhookSink(url: try server().appendingPathComponent("flaky-2/\(name)"), batchSize: 1, retryPolicy: policy)
        let dispatcher = SinkDispatcher(sinks: [sink], clock: ManualClock())
        dispatcher.submit(deliveries(1)[0])
        #expect(await dispatcher.finish(within: .seconds(60)).isEmpty)
        let requests = try await recorded(name)
        #expect(requests.count == 3)
        #expect(Set(requests.compactMap { $0["idempotency_key"] as? String }) == ["run-7/c0"])
    }

    @Test func aRedirectIsNotFollowedAndFailsTheSinkByName() async throws {
        let name = "redirect-\(UUID().uuidString)"
        let sink = try WebhookSink(url: try server().appendingPathComponent("redirect/\(name)"), batchSize: 1)
        let dispatcher = SinkDispatcher(sinks: [sink], clock: ManualClock())
        dispatcher.submit(deliveries(1)[0])
        let failures = await dispatcher.finish(within: .seconds(60))
        #expect(failures.count == 1)
        #expect(failures.first?.sink.hasPrefix("webhook(http://127.0.0.1:") == true)
        #expect(failures.first?.description.contains("redirect") == true)
        let requests = try await recorded(name)
        #expect(requests.map { $0["path"] as? String } == ["/redirect/\(name)"], "the Location was never requested")
    }

    @Test func aRejectedBatchIsNotRetried() async throws {
        let name = "reject-\(UUID().uuidString)"
        let sink = try WebhookSink(url: try server().appendingPathComponent("reject/\(name)"), batchSize: 1)
        let dispatcher = SinkDispatcher(sinks: [sink], clock: ManualClock())
        dispatcher.submit(deliveries(1)[0])
        let failures = await dispatcher.finish(within: .seconds(60))
        #expect(failures.first?.description.contains("HTTP 400") == true)
        #expect(try await recorded(name).count == 1)
    }

    @Test func urlsThatWouldLeakAreRefused() {
        #expect(throws: APIError.self) { try WebhookSink(url: URL(string: "http://example.com/hook")!) }
        #expect(throws: APIError.self) { try WebhookSink(url: URL(string: "https://user:secret@example.com/hook")!) }
        #expect(throws: APIError.self) { try WebhookSink(url: URL(string: "ftp://example.com/hook")!) }
        #expect(throws: APIError.self) { try WebhookSink(url: URL(string: "https://example.com/hook")!, batchSize: 0) }
        let sink = try? WebhookSink(url: URL(string: "https://example.com/hook?token=s3cret")!)
        #expect(sink?.name == "webhook(https://example.com/hook?…)", "a token in the query is never shown")
    }
}

/// `pipeline --sink webhook:URL` against the recording server.
@Suite struct CLIWebhookSinkTests {
    let input = (0..<5).map { #"{"id":"w\#($0)","model":"m","prompt":"p\#($0)"}"# }.joined(separator: "\n")

    @Test func everyResultReachesTheWebhook() async throws {
        let name = "cli-\(UUID().uuidString)"
        let url = try Peers.webhook.get().appendingPathComponent("hook/\(name)")
        let run = try await runPipeline(["--sink", "webhook:\(url.absoluteString)", "--run-id", "cli-run", "--quiet"], stdin: input)
        #expect(run.status == 0, "\(run.stderr)")
        let (data, _) = try await URLSession.shared.data(from: try Peers.webhook.get().appendingPathComponent("requests/\(name)"))
        let requests = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
        let results = requests.flatMap { (($0["body"] as? [String: Any])?["results"] as? [[String: Any]]) ?? [] }
        #expect(results.map { $0["idempotency_key"] as? String } == (0..<5).map { "cli-run/w\($0)" })
        #expect(results.compactMap { ($0["result"] as? [String: Any])?["id"] as? String } == run.records.compactMap { $0["id"] as? String })
    }

    /// The receiver never answers: stdout still gets every result at once, the sink after the
    /// hanging one still gets every line, and the run ends within the sink timeout's bound.
    @Test func aHangingWebhookDelaysNoOutputAndNoOtherSink() async throws {
        let name = "hang-\(UUID().uuidString)"
        let url = try Peers.webhook.get().appendingPathComponent("hang/\(name)")
        let dir = try temporaryDirectory()
        let copy = dir.appendingPathComponent("copy.jsonl").path
        let run = try await runPipeline(
            ["--sink", "webhook:\(url.absoluteString)@1", "--sink", "jsonl:\(copy)@2", "--sink-timeout", "3"],
            stdin: (0..<60).map { #"{"id":"h\#($0)","model":"m","prompt":"p"}"# }.joined(separator: "\n"))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.lines.count == 60)
        #expect(try String(contentsOfFile: copy, encoding: .utf8) == run.stdout)
        // The hanging sink is reported (how many of its deliveries time out before the drain gives
        // up depends on scheduling; that it is reported, and harms nothing else, does not).
        #expect(run.stderr.contains("timed out"), "\(run.stderr)")
    }
}
