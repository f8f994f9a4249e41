import CommandPipeline
import CommandPipelineBatch
@testable import CommandPipelineHTTP
import Foundation
import PipelineTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `pipeline batch` end to end against llmock (PyPI), which serves OpenAI's Files + Batch API
/// and Anthropic's Message Batches (results from its `results_url`). Each llmock batch takes
/// about three seconds of the server's own time to end: the CLI polls it with a bounded
/// `--wait --timeout`. Serialized, on a llmock of their own: Anthropic batches carry no label,
/// and the in-doubt reconciliation must see only these tests' batches.
@Suite(.serialized) struct BatchLLMockTests {
    struct Target {
        var provider: String
        var baseURL: String
        var models: [String]
        /// Where the server lists its batches (for counting them).
        var listPath: String
        var origin: URL

        static func openAI(_ peer: Result<URL, Peers.PeerError> = Peers.llmockBatches) throws -> Target {
            let origin = try peer.get()
            return Target(
                provider: "openai", baseURL: origin.appendingPathComponent("v1").absoluteString, models: ["gpt-4o", "gpt-4o-mini"],
                listPath: "v1/batches", origin: origin)
        }

        static func anthropic(_ peer: Result<URL, Peers.PeerError> = Peers.llmockBatches) throws -> Target {
            let origin = try peer.get()
            return Target(
                provider: "anthropic", baseURL: origin.appendingPathComponent("anthropic").absoluteString,
                models: ["claude-sonnet-4-6", "claude-haiku-4-5"], listPath: "anthropic/v1/messages/batches", origin: origin)
        }

        var providerArguments: [String] {
            var arguments = ["--provider", provider, "--base-url", baseURL]
            if provider == "openai" { arguments += ["--capabilities", "generation,batch"] }
            return arguments
        }

        /// The batches the server holds.
        func batchCount() async throws -> Int {
            var components = URLComponents(url: origin.appendingPathComponent(listPath), resolvingAgainstBaseURL: false)!
            components.queryItems = [URLQueryItem(name: "limit", value: "100000")]
            let list = try await peerJSON(components.url!) as? [String: Any]
            return (list?["data"] as? [Any])?.count ?? -1
        }
    }

    /// `n` commands: every fourth has two calls; models alternate in runs of three.
    static func commands(_ n: Int, models: [String], tag: String) -> String {
        var out = ""
        out.reserveCapacity(n * 80)
        for i in 0..<n {
            let model = models[(i / 3) % models.count]
            if i % 4 == 0 {
                out += #"{"id":"\#(tag)-\#(i)","model":"\#(model)","prompts":["summary \#(i)","claims \#(i)"],"system":"terse","metadata":{"i":\#(i)}}"# + "\n"
            } else {
                out += #"{"model":"\#(model)","prompt":"paper \#(tag) \#(i)"}"# + "\n"
            }
        }
        return out
    }

    static func texts(_ run: PipelineRun) -> [[String]] {
        run.records.map { ($0["responses"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String } }
    }

    /// Submits with a kill between sending job `crashAfter` and recording it, re-runs, collects
    /// twice and compares with a live run of the same commands on the same server.
    func killBetweenSendAndRecord(_ target: Target, commands n: Int, perJob: Int, crashAfter: Int) async throws {
        let dir = try temporaryDirectory()
        let job = dir.appendingPathComponent("job.json").path
        let input = Self.commands(n, models: target.models, tag: "\(target.provider)-\(perJob)")
        let before = try await target.batchCount()
        var environment = ProcessInfo.processInfo.environment
        environment["PIPELINE_BATCH_TEST_CRASH_AFTER_SUBMITS"] = "\(crashAfter)"
        let submitArguments = ["batch", "submit", "--job", job, "--max-requests-per-job", "\(perJob)"] + target.providerArguments
        let killed = try await runPipeline(submitArguments + ["--quiet"], stdin: input, environment: environment)
        #expect(killed.status == 137, "\(killed.stderr)")
        #expect(try String(contentsOfFile: job, encoding: .utf8).contains(#""state":"submitting""#))
        #expect(try await target.batchCount() == before + crashAfter)

        let rerun = try await runPipeline(submitArguments, stdin: input)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(rerun.stderr.contains("already submitted"), "the in-doubt job was found on the server: \(rerun.stderr)")
        let jobs = try #require(rerun.records.first?["jobs"] as? [String])
        #expect(Set(jobs).count == jobs.count)
        #expect(try await target.batchCount() == before + jobs.count, "no job was submitted twice")

        let first = try await runPipeline(["batch", "collect", job, "--wait", "--poll-seconds", "0.25", "--timeout", "120", "--quiet"] + endpointArguments(target.providerArguments))
        let second = try await runPipeline(["batch", "collect", job, "--quiet"] + endpointArguments(target.providerArguments))
        let live = try await runPipeline(["--quiet"] + target.providerArguments.filter { !$0.hasPrefix("generation") && $0 != "--capabilities" }, stdin: input)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout == second.stdout, "collecting twice gives the same lines")
        #expect(first.records.count == n)
        #expect(live.records.count == n)
        #expect(Self.texts(first) == Self.texts(live), "same texts in the same order as run")
        #expect(first.records.map { $0["id"] as? String } == live.records.map { $0["id"] as? String })
        #expect(first.records.map { $0[path: "usage.total_tokens"] as? Int } == live.records.map { $0[path: "usage.total_tokens"] as? Int })
        #expect(first.records.allSatisfy { $0[path: "telemetry.batch"] as? Bool == true && jobs.contains($0[path: "telemetry.batch_job"] as? String ?? "") })
    }

    @Test func openAIKilledSubmitIsReconciledByItsMarkerAndCollectEqualsRun() async throws {
        try await killBetweenSendAndRecord(try .openAI(), commands: 24, perJob: 5, crashAfter: 2)
    }

    @Test func anthropicKilledSubmitIsReconciledBySizeAndTimeAndCollectEqualsRun() async throws {
        try await killBetweenSendAndRecord(try .anthropic(), commands: 21, perJob: 8, crashAfter: 1)
    }

    /// Makes an OpenAI job on llmock fail whole: its input file is deleted before the server
    /// reads it (llmock processes a job at the first look after its ~3 s, and finds no file).
    static func failJob(_ jobID: String, target: Target) async throws {
        let batch = try await peerJSON(target.origin.appendingPathComponent("v1/batches/\(jobID)")) as? [String: Any]
        let file = try #require(batch?["input_file_id"] as? String)
        _ = try await peerJSON(target.origin.appendingPathComponent("v1/files/\(file)"), method: "DELETE")
    }

    /// `batch retry` after one job failed: only that job's requests go again, as a new job in
    /// the same job file; a retry killed between sending and recording is finished by the next
    /// (found by its marker, not sent twice); collect then merges (one line per command, input
    /// order, the retried commands answered by the retry's job, the texts of a live run); a
    /// retry when nothing failed sends nothing.
    @Test func openAIRetryResendsOnlyTheFailedJobSurvivesAKillAndCollectMerges() async throws {
        let target = try Target.openAI()
        let endpoint = endpointArguments(target.providerArguments)
        let n = 12
        var setup: (job: String, input: String, collected: PipelineRun)?
        // The deletion must reach the server before its first look at the job: bounded attempts.
        for attempt in 1...3 where setup == nil {
            let job = try temporaryDirectory().appendingPathComponent("job.json").path
            let input = Self.commands(n, models: target.models, tag: "retry-\(attempt)")
            let submit = try await runPipeline(["batch", "submit", "--job", job, "--max-requests-per-job", "4", "--quiet"] + target.providerArguments, stdin: input)
            #expect(submit.status == 0, "\(submit.stderr)")
            let jobs = try #require(submit.records.first?["jobs"] as? [String])
            try await Self.failJob(try #require(jobs.last), target: target)
            let collected = try await runPipeline(["batch", "collect", job, "--wait", "--poll-seconds", "0.25", "--timeout", "120", "--quiet"] + endpoint)
            if collected.status == 1 { setup = (job, input, collected) }
        }
        let (job, input, first) = try #require(setup, "the input file was never deleted before llmock read it (3 attempts)")
        let failed = first.records.filter { $0["status"] as? String == "failed" }
        #expect(!failed.isEmpty && failed.allSatisfy { $0[path: "error.details.code"] as? String == "batch_failed" }, "\(failed.first ?? [:])")
        let recorded = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: job))) as? [String: Any])
        let failedRequests = try #require((recorded["chunks"] as? [[String: Any]])?.last?["requests"] as? Int)

        let before = try await target.batchCount()
        var crashing = ProcessInfo.processInfo.environment
        crashing["PIPELINE_BATCH_TEST_CRASH_AFTER_SUBMITS"] = "1"
        let killed = try await runPipeline(["batch", "retry", job, "--quiet"] + endpoint, environment: crashing)
        #expect(killed.status == 137, "\(killed.stderr)")
        #expect(try String(contentsOfFile: job, encoding: .utf8).contains(#""state":"submitting""#))
        #expect(try await target.batchCount() == before + 1)
        let rerun = try await runPipeline(["batch", "retry", job] + endpoint)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(rerun.stderr.contains("already submitted"), "the retry's job was found by its marker: \(rerun.stderr)")
        #expect(rerun.records.first?["retried_requests"] as? Int == failedRequests && rerun.records.first?["resumed"] as? Bool == true, "\(rerun.stdout)")
        let retryJob = try #require((rerun.records.first?["jobs"] as? [String])?.first)
        #expect(try await target.batchCount() == before + 1, "the retry's job was not sent twice")

        let merged = try await runPipeline(["batch", "collect", job, "--wait", "--poll-seconds", "0.25", "--timeout", "120", "--quiet"] + endpoint)
        let live = try await runPipeline(["--quiet"] + target.providerArguments.filter { !$0.hasPrefix("generation") && $0 != "--capabilities" }, stdin: input)
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(merged.records.count == n)
        #expect(merged.records.map { $0["id"] as? String } == live.records.map { $0["id"] as? String }, "one line per command, input order")
        #expect(Self.texts(merged) == Self.texts(live))
        let failedIDs = Set(failed.compactMap { $0["id"] as? String })
        for record in merged.records where failedIDs.contains(record["id"] as? String ?? "") {
            // A fan-out's first call may sit in a job that answered: then that job is named.
            #expect(record["status"] as? String == "succeeded")
        }
        #expect(merged.records.contains { $0[path: "telemetry.batch_job"] as? String == retryJob })

        let nothing = try await runPipeline(["batch", "retry", job] + endpoint)
        #expect(nothing.status == 0, "\(nothing.stderr)")
        #expect(nothing.stderr.contains("nothing to retry"), "\(nothing.stderr)")
        #expect(nothing.records.first?["retried_requests"] as? Int == 0)
        #expect(try await target.batchCount() == before + 1, "no job when nothing failed")
    }

    /// The library as a Swift user drives it, over llmock's OpenAI batch routes: submit, wait,
    /// collect — one record per command, in input order, each answered.
    @Test func theLibrarySubmitsWaitsAndCollectsOverLLMock() async throws {
        let target = try Target.openAI()
        let provider = OpenAIProvider.make(OpenAIConfiguration(baseURL: URL(string: target.baseURL)!, capabilities: [.generation, .batch], requestTimeout: 30))
        let run = try BatchRun(jobFile: try temporaryDirectory().appendingPathComponent("job.json").path, provider: provider)
        let sent = try await run.submit(BatchInput(Array(Self.commands(5, models: target.models, tag: "library").utf8)), maxRequestsPerJob: 3)
        #expect(sent.commands == 5 && sent.requests == 7 && sent.jobs.allSatisfy { $0 != nil })
        let progress = try await run.status(waiting: BatchWaiting(pollInterval: .milliseconds(250), timeout: .seconds(120)))
        #expect(progress.allEnded && progress.succeeded == 7, "\(progress.line())")
        var records: [BatchRecord] = []
        let collected = try await run.collect { records.append($0); return true }
        #expect(collected.commands == 5 && collected.failed == 0)
        #expect(records.map(\.index) == Array(0..<5) && records.allSatisfy(\.succeeded))
        #expect(records[0].id == "library-0")
    }

    /// The adapters straight, without the CLI: ids come back matched, counts add up, a marker
    /// finds its job, cancel cancels.
    @Test(arguments: ["openai", "anthropic"])
    func adaptersSubmitPollFetchAndCancel(provider: String) async throws {
        let origin = try Peers.llmockBatches.get()
        let adapter: any GenerationCapability
        let model: String
        if provider == "openai" {
            adapter = OpenAIProvider.make(OpenAIConfiguration(baseURL: origin.appendingPathComponent("v1"), capabilities: [.generation, .batch], requestTimeout: 30))
            model = "gpt-4o"
        } else {
            adapter = AnthropicProvider.make(AnthropicConfiguration(baseURL: origin.appendingPathComponent("anthropic"), capabilities: [.generation, .batch], requestTimeout: 30))
            model = "claude-sonnet-4-6"
        }
        let batch = try #require(adapter.batch)
        let requests = (0..<3).map { BatchRequest(id: "q\($0)", request: GenerationRequest(model: model, parts: [.text("question \($0) \(provider)")])) }
        let marker = BatchMarker(name: "pl-adapter-\(provider)-\(UUID().uuidString.prefix(8))", requestCount: 3, notBefore: Date().addingTimeInterval(-1))
        let job = try await batch.submitBatch(requests, marker: marker)
        #expect(!job.state.isEnded)
        // The marker finds this job (compared by id: its state and counts move on while we look).
        if provider != "anthropic" {
            let lookup = try await batch.findBatch(marker)
            guard case .found(let found) = lookup else {
                Issue.record("the marker did not find the job: \(lookup)")
                return
            }
            #expect(found.id == job.id)
        }
        // Poll until the server ends it: bounded (llmock ends a batch after ~3 s).
        var status = job
        for _ in 0..<300 where !status.state.isEnded {
            try await Task.sleep(for: .milliseconds(100))
            status = try await batch.batchStatus(job.id)
        }
        #expect(status.state == .completed)
        #expect(status.counts == BatchCounts(total: 3, succeeded: 3, failed: 0))
        let results = Dictionary(uniqueKeysWithValues: try await batch.batchResults(job.id).map { ($0.id, $0.outcome) })
        #expect(Set(results.keys) == ["q0", "q1", "q2"])
        for request in requests {
            #expect(try results[request.id]?.get().text == (try await adapter.generate(request.request)).text)
        }
        // A second job, cancelled before it ends.
        let other = try await batch.submitBatch(Array(requests.prefix(1)), marker: BatchMarker(name: marker.name + "-c", requestCount: 1, notBefore: Date()))
        // llmock ends a job about 3 s after submit: a test task starved that long on a loaded
        // machine finds it ended, and the server's refusal says so. Otherwise cancel must cancel.
        do {
            #expect(try await batch.cancelBatch(other.id).state == .cancelled)
            #expect(try await batch.batchResults(other.id).isEmpty)
        } catch let error as APIError where error.message.contains("already in terminal status") || error.message.contains("already ended") {
            #expect(try await batch.batchStatus(other.id).state.isEnded)
        }
        await #expect(throws: APIError.self) { try await batch.batchStatus("../files") }
    }
}

/// What a batch adapter hands on never carries the key.
@Suite struct BatchScrubbingTests {
    @Test func aJobIdCarryingTheKeyIsRefusedAndMessagesAreRedacted() throws {
        let key = "sk-live-0123456789abcdefXYZ"
        let text = ServerText(key: APIKey(key))
        #expect(throws: APIError.self) { try text.scrub(BatchJob(id: "batch_\(key)", state: .running, counts: BatchCounts(total: 1, succeeded: 0, failed: 0))) }
        let job = try text.scrub(BatchJob(id: "batch_1", state: .failed, counts: BatchCounts(total: 1, succeeded: 0, failed: 1), message: "bad key \(key)"))
        #expect(job.message?.contains(key) == false)
        #expect(try text.scrub(BatchLookup.ambiguous("two: \(key)")) == .ambiguous("two: <redacted>"))
    }
}
