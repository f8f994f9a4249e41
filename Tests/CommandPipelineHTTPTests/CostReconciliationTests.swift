import CommandPipeline
import Foundation
import PipelineTestSupport
import Testing

/// Issue 30: what the results say a run cost equals what the server billed. Each fake server
/// keeps a log of every answer it billed (with the usage the answer reported: warm-ups, cache
/// creations, streams cut after their usage came, batch answers); the test prices that log at
/// the catalog's prices itself, from the raw figures, and compares it with the sum of the
/// results' `telemetry.cost.usd`, the run's total on stderr and (for `run`) `--stats-json`.
/// Equal to the cent, and in fact to a millionth of a dollar.
@Suite struct CostReconciliationTests {
    /// Dollars per million tokens: the test's own copy of what the `--models` file says.
    struct Prices {
        var input: Double
        var cached: Double
        var output: Double
        /// nil: written tokens cost the input price (Gemini's cache creation).
        var write5m: Double?
        var write1h: Double?
        var storagePerHour: Double = 0

        var json: String {
            func price(_ value: Double?) -> String { value.map { "\($0)" } ?? "null" }
            return #"{"input": \#(input), "cached_input": \#(cached), "output": \#(output), "cache_write": \#(price(write5m)), "cache_write_1h": \#(price(write1h)), "cache_storage_per_hour": \#(storagePerHour), "batch_discount": 0.5}"#
        }
    }

    static func models(_ names: [String], _ prices: Prices) -> String {
        let entries = names.map { #""\#($0)": {"provider": "test", "context_window": 1000000, "max_output_tokens": 8192, "prices": \#(prices.json)}"# }
        return #"{"models": {"# + entries.joined(separator: ", ") + "}}"
    }

    static func int(_ value: Any?) -> Int { (value as? Int) ?? Int((value as? String) ?? "") ?? 0 }

    /// `pipeline: cost $X at catalog prices`, or the batch closing line's `cost $X at catalog batch prices`.
    static func stderrTotal(_ stderr: String, batch: Bool = false) -> Double? {
        let marker = batch ? " at catalog batch prices" : " at catalog prices"
        guard let end = stderr.range(of: marker), let start = stderr[..<end.lowerBound].range(of: "cost $", options: .backwards) else { return nil }
        return Double(stderr[start.upperBound..<end.lowerBound])
    }

    static func sum(_ results: [[String: Any]]) -> Double {
        results.reduce(0) { $0 + (($1[path: "telemetry.cost.usd"] as? Double) ?? 0) }
    }

    /// Every total agrees with what the server billed: to the cent, and to a millionth.
    static func expectReconciled(billed: Double, results: [[String: Any]], stderr: String, stats: URL?, batch: Bool = false) throws {
        let resultsTotal = sum(results)
        #expect(billed > 0.01, "the run cost something worth counting: \(billed)")
        #expect((billed * 100).rounded() == (resultsTotal * 100).rounded(), "to the cent: billed \(billed), results \(resultsTotal)")
        #expect(abs(billed - resultsTotal) < 1e-6, "billed \(billed), results \(resultsTotal)")
        let printed = try #require(stderrTotal(stderr, batch: batch), "\(stderr)")
        #expect(abs(printed - billed) < 1e-6, "stderr \(printed), billed \(billed)")
        if let stats {
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: stats)) as? [String: Any]
            let total = try #require((report?["cost"] as? [String: Any])?["usd"] as? Double)
            #expect(abs(total - billed) < 1e-6, "--stats-json \(total), billed \(billed)")
        }
    }

    // MARK: OpenAI-compatible

    /// The fault server's echo model reports 2 cached tokens on every answer; a fan-out command
    /// makes several calls; one answer has usage but no choices (a failed attempt, billed).
    /// Every answer is billed at input, cached-input and output prices.
    @Test func openAICompatible() async throws {
        let base = try Peers.faults.get()
        let tag = "recon-\(UUID().uuidString.prefix(8))"
        let prices = Prices(input: 2.5, cached: 1.25, output: 10)
        let dir = try temporaryDirectory(files: ["models.json": Self.models(["echo", "no-choices"], prices)])
        let long = String(repeating: "a long question about the run \(tag) ", count: 300)
        let input = [
            #"{"id":"a","model":"echo","prompt":"\#(long) one"}"#,
            #"{"id":"b","model":"echo","prompts":["\#(tag) two","\#(long) three","\#(tag) four"]}"#,
            #"{"id":"c","model":"echo","prompt":"\#(long) five"}"#,
            #"{"id":"d","model":"no-choices","prompt":"\#(long) six"}"#,
        ].joined(separator: "\n")
        let run = try await runPipeline(
            ["--provider", "openai", "--base-url", base.absoluteString, "--models", "models.json", "--stats-json", "stats.json", "--concurrency", "2"],
            stdin: input, currentDirectory: dir)
        #expect(run.status == 1, "the answer without choices fails its command: \(run.stderr)")
        try #require(run.records.count == 4)
        let failed = (run.records[3][path: "telemetry.cost.requests"] as? [[String: Any]])?.map { $0["request"] as? String }
        #expect(failed == ["failed_attempt"], "\(run.records[3])")
        let log = try #require(try await peerJSON(base.appendingPathComponent("billed")) as? [[String: Any]])
        let mine = log.filter { ($0["text"] as? String)?.contains(tag) == true }
        #expect(mine.count == 6, "one answer per call")
        let billed = mine.reduce(0.0) { total, entry in
            let usage = entry["usage"] as? [String: Any] ?? [:]
            let prompt = Self.int(usage["prompt_tokens"]), completion = Self.int(usage["completion_tokens"])
            let cached = Self.int((usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"])
            return total + (Double(prompt - cached) * prices.input + Double(cached) * prices.cached + Double(completion) * prices.output) / 1e6
        }
        try Self.expectReconciled(billed: billed, results: run.records, stderr: run.stderr, stats: dir.appendingPathComponent("stats.json"))
    }

    // MARK: Anthropic

    /// Four commands share a context cached for an hour (one warm-up writes it at the one-hour
    /// price), one has a context cached for five minutes, one streams from a model whose stream
    /// is cut after its first piece (its message_start reported usage: billed), one is plain.
    /// `--events` makes every call stream.
    @Test func anthropic() async throws {
        let base = try Peers.anthropicFixture.get()
        let tag = UUID().uuidString.prefix(8).lowercased()
        let model = "claude-recon-\(tag)", cut = "claude-recon-\(tag)-stream-truncate"
        let prices = Prices(input: 3, cached: 0.3, output: 15, write5m: 3.75, write1h: 6)
        let dir = try temporaryDirectory(files: ["models.json": Self.models([model, cut], prices)])
        func context(_ name: String) -> String {
            "Manual \(name) \(tag). " + (1...400).map { "Rule \($0): every stage returns a new state." }.joined(separator: " ")
        }
        func cached(_ id: String, _ shared: String, ttl: Int) -> String {
            #"{"id":"\#(id)","plan":{"calls":[{"model":"\#(model)","parts":[{"type":"text","text":"Question \#(id)?"}],"config":{"max_tokens":50}}],"shared_parts":[{"type":"text","text":"\#(shared)"}],"cache":{"ttl_seconds":\#(ttl)}}}"#
        }
        let hour = context("hour"), short = context("five-minutes")
        let input = [
            cached("h1", hour, ttl: 3600), cached("h2", hour, ttl: 3600), cached("h3", hour, ttl: 3600), cached("h4", hour, ttl: 3600),
            cached("m1", short, ttl: 300),
            #"{"id":"cut","model":"\#(cut)","prompt":"this answer will be cut off"}"#,
            #"{"id":"plain","model":"\#(model)","prompt":"a plain question"}"#,
        ].joined(separator: "\n")
        var environment = AnthropicPeers.environment
        environment["MY_FIXTURE_KEY"] = Peers.anthropicFixtureKey
        let run = try await runPipeline(
            ["--provider", "anthropic", "--base-url", base.absoluteString, "--api-key-env", "MY_FIXTURE_KEY", "--models", "models.json",
             "--stats-json", "stats.json", "--events", "--concurrency", "3", "--max-attempts", "1"],
            stdin: input, currentDirectory: dir, environment: environment)
        let results = run.records.filter { ["command_succeeded", "command_failed"].contains($0["type"] as? String) }.compactMap { $0["result"] as? [String: Any] }
        try #require(results.count == 7, "\(run.stderr)")
        #expect(run.status == 1, "the cut stream fails its command")
        let byID = Dictionary(uniqueKeysWithValues: results.map { ($0["id"] as? String ?? "", $0) })
        // The warm-up landed on the command that created each cache, the cut attempt on its command.
        let creators = results.filter { $0[path: "telemetry.cache.created"] as? Bool == true }
        #expect(creators.count == 2)
        for creator in creators {
            let requests = (creator[path: "telemetry.cost.requests"] as? [[String: Any]])?.compactMap { $0["request"] as? String } ?? []
            #expect(requests.contains("cache_warm_up"), "\(requests)")
            #expect(((creator[path: "telemetry.cost.cache_write_usd"] as? Double) ?? 0) > 0)
        }
        let cutRequests = (byID["cut"]?[path: "telemetry.cost.requests"] as? [[String: Any]]) ?? []
        // The text the cut stream delivered is kept as an interrupted response (no usage: $0);
        // what its answer reported before the cut is the billed failed attempt.
        #expect(cutRequests.map { $0["request"] as? String } == ["call", "failed_attempt"])
        #expect(cutRequests.first?["usd"] as? Double == 0)
        #expect(((byID["cut"]?[path: "telemetry.cost.usd"] as? Double) ?? 0) > 0)

        let stats = try await AnthropicPeers.control(base.appendingPathComponent("_fixture/stats"), method: "GET")
        let log = (stats["billed"] as? [[String: Any]] ?? []).filter { [model, cut].contains($0["model"] as? String ?? "") }
        // Two warm-ups, six answered calls, one cut stream.
        #expect(log.count == 9, "\(log.count) billed requests")
        let billed = log.reduce(0.0) { total, entry in
            let usage = entry["usage"] as? [String: Any] ?? [:]
            let split = usage["cache_creation"] as? [String: Any] ?? [:]
            let input = Self.int(usage["input_tokens"]), read = Self.int(usage["cache_read_input_tokens"]), output = Self.int(usage["output_tokens"])
            let w5 = Self.int(split["ephemeral_5m_input_tokens"]), w1 = Self.int(split["ephemeral_1h_input_tokens"])
            return total + (Double(input) * prices.input + Double(read) * prices.cached + Double(w5) * prices.write5m! + Double(w1) * prices.write1h!
                + Double(output) * prices.output) / 1e6
        }
        try Self.expectReconciled(billed: billed, results: results, stderr: run.stderr, stats: dir.appendingPathComponent("stats.json"))
    }

    // MARK: Gemini

    /// Three commands share a context the adapter puts in a `cachedContents` for ten minutes
    /// (its tokens billed once at the input price, then storage for the TTL); one is plain.
    @Test func gemini() async throws {
        let origin = try Peers.geminiFixture.get()
        let key = "test-recon-\(UUID().uuidString.prefix(8))"
        let model = "gemini-recon"
        let prices = Prices(input: 1.25, cached: 0.125, output: 10, storagePerHour: 4.5)
        let dir = try temporaryDirectory(files: ["models.json": Self.models([model], prices)])
        let context = String(repeating: "The shared context of every question in this run. ", count: 600)
        let input = ((1...3).map { i in
            #"{"id":"q\#(i)","plan":{"shared_parts":[{"type":"text","text":"\#(context)"}],"calls":[{"model":"\#(model)","parts":[{"type":"text","text":"Question \#(i)?"}],"config":{"system_instruction":"Answer briefly."}}],"cache":{"ttl_seconds":600}}}"#
        } + [#"{"id":"plain","model":"\#(model)","prompt":"\#(String(repeating: "a plain question ", count: 200))"}"#]).joined(separator: "\n")
        var environment = ProcessInfo.processInfo.environment
        environment["GEMINI_API_KEY"] = key
        environment["GOOGLE_API_KEY"] = nil
        let run = try await runPipeline(
            ["--provider", "gemini", "--base-url", origin.absoluteString, "--models", "models.json", "--stats-json", "stats.json", "--concurrency", "3"],
            stdin: input, currentDirectory: dir, environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        try #require(run.records.count == 4)
        let creators = run.records.filter { $0[path: "telemetry.cache.created"] as? Bool == true }
        try #require(creators.count == 1)
        let requests = (creators[0][path: "telemetry.cost.requests"] as? [[String: Any]])?.compactMap { $0["request"] as? String }
        #expect(requests == ["call", "cache_creation", "cache_storage"], "\(creators[0])")
        #expect(((creators[0][path: "telemetry.cost.cache_storage_usd"] as? Double) ?? 0) > 0)

        var components = URLComponents(url: origin.appendingPathComponent("_fixture/stats"), resolvingAgainstBaseURL: false)!
        components.queryItems = [URLQueryItem(name: "key", value: key)]
        let stats = try await peerJSON(components.url!) as? [String: Any] ?? [:]
        let log = stats["billed"] as? [[String: Any]] ?? []
        #expect(log.filter { $0["request"] as? String == "cache_creation" }.count == 1)
        #expect(log.filter { $0["request"] as? String == "generate" }.count == 4)
        let billed = log.reduce(0.0) { total, entry in
            if entry["request"] as? String == "cache_creation" {
                let tokens = Double(Self.int(entry["tokens"])), hours = Double(Self.int(entry["ttl_seconds"])) / 3600
                return total + (tokens * prices.input + tokens * prices.storagePerHour * hours) / 1e6
            }
            let usage = entry["usage"] as? [String: Any] ?? [:]
            let prompt = Self.int(usage["promptTokenCount"]), cached = Self.int(usage["cachedContentTokenCount"])
            let output = Self.int(usage["candidatesTokenCount"]) + Self.int(usage["thoughtsTokenCount"])
            return total + (Double(prompt - cached) * prices.input + Double(cached) * prices.cached + Double(output) * prices.output) / 1e6
        }
        try Self.expectReconciled(billed: billed, results: run.records, stderr: run.stderr, stats: dir.appendingPathComponent("stats.json"))
    }

    // MARK: Batch

    /// `pipeline batch` against the Gemini fixture: every answer at the batch price (half of
    /// every token price here); a command with a cache plan runs uncached in a batch, so
    /// nothing is created or stored, and nothing is priced for it.
    @Test func batch() async throws {
        let origin = try Peers.geminiFixture.get()
        let key = "test-recon-batch-\(UUID().uuidString.prefix(8))"
        let model = "gemini-recon"
        let prices = Prices(input: 1.25, cached: 0.125, output: 10, storagePerHour: 4.5)
        let dir = try temporaryDirectory(files: ["models.json": Self.models([model], prices)])
        let job = dir.appendingPathComponent("job.json").path
        let context = String(repeating: "The shared context of every question in this batch. ", count: 400)
        let input = ((1...4).map { i in #"{"id":"b\#(i)","model":"\#(model)","prompt":"\#(String(repeating: "batch question \(i) ", count: 300))"}"# }
            + [#"{"id":"cached","plan":{"shared_parts":[{"type":"text","text":"\#(context)"}],"calls":[{"model":"\#(model)","parts":[{"type":"text","text":"Q?"}]}],"cache":{"ttl_seconds":600}}}"#])
            .joined(separator: "\n")
        var environment = ProcessInfo.processInfo.environment
        environment["GEMINI_API_KEY"] = key
        environment["GOOGLE_API_KEY"] = nil
        let submit = try await runPipeline(
            ["batch", "submit", "--job", job, "--provider", "gemini", "--base-url", origin.absoluteString, "--quiet"], stdin: input, currentDirectory: dir,
            environment: environment)
        #expect(submit.status == 0, "\(submit.stderr)")
        let collect = try await runPipeline(
            // The job file does not decide where the key goes: collect names the endpoint again.
            ["batch", "collect", job, "--provider", "gemini", "--base-url", origin.absoluteString, "--wait", "--poll-seconds", "0.05", "--timeout", "60", "--models", "models.json"],
            currentDirectory: dir,
            environment: environment)
        #expect(collect.status == 0, "\(collect.stderr)")
        try #require(collect.records.count == 5, "\(collect.stderr)")
        #expect(collect.records.allSatisfy { $0[path: "telemetry.cost.cache_write_usd"] as? Double == 0 && $0[path: "telemetry.cost.cache_storage_usd"] as? Double == 0 })

        var components = URLComponents(url: origin.appendingPathComponent("_fixture/stats"), resolvingAgainstBaseURL: false)!
        components.queryItems = [URLQueryItem(name: "key", value: key)]
        let stats = try await peerJSON(components.url!) as? [String: Any] ?? [:]
        let log = stats["billed"] as? [[String: Any]] ?? []
        #expect(log.count == 5 && log.allSatisfy { $0["request"] as? String == "batch_generate" }, "\(log)")
        let billed = log.reduce(0.0) { total, entry in
            let usage = entry["usage"] as? [String: Any] ?? [:]
            let prompt = Self.int(usage["promptTokenCount"]), cached = Self.int(usage["cachedContentTokenCount"])
            let output = Self.int(usage["candidatesTokenCount"]) + Self.int(usage["thoughtsTokenCount"])
            return total + 0.5 * (Double(prompt - cached) * prices.input + Double(cached) * prices.cached + Double(output) * prices.output) / 1e6
        }
        try Self.expectReconciled(billed: billed, results: collect.records, stderr: collect.stderr, stats: nil, batch: true)
    }
}
