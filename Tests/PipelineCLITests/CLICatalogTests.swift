import Foundation
import Testing

/// `--models`, pre-flight checks, cost and `--max-cost` through the real binary.
@Suite struct CLICatalogTests {
    /// "m" costs $0.1 per prompt token and $0.2 per completion token.
    let models = #"{"models": {"m": {"context_window": 100, "max_output_tokens": 50, "input_modalities": ["text"], "prices": {"input": 100000, "output": 200000}}}}"#

    func call(_ id: String, _ prompt: String = "hello", model: String = "m") -> String {
        #"{"id":"\#(id)","plan":{"calls":[{"model":"\#(model)","parts":[{"type":"text","text":"\#(prompt)"}],"config":{"max_tokens":3}}]}}"#
    }

    @Test func resultsCarryTheirCostAndTheSummaryTheRunsCost() async throws {
        let dir = try CLI.temporaryDirectory(files: ["models.json": models])
        let input = [call("a"), call("b"), call("c", model: "gpt-4o-mini")].joined(separator: "\n")
        let run = try await CLI.run(["--models", "models.json", "--concurrency", "1"], stdin: input, currentDirectory: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.records.map { $0[path: "telemetry.cost.usd"] as? Double } == [0.8, 0.8, 2.1e-6])
        #expect(run.records.first?[path: "responses.0.cost.output_usd"] as? Double == 0.6)
        #expect(run.stderr.contains("pipeline: cost $1.600002 at catalog prices (3 commands priced, mock provider: nothing was charged)"), "\(run.stderr)")
        let (valid, report) = try await CLI.validate(run.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
    }

    /// Issue 30: the command that creates the cache pays for its creation and storage, and the
    /// sum of the results is the run's total on stderr and in --stats-json, to the cent.
    @Test func theCacheIsPricedOnTheCommandThatCreatedItAndEveryTotalAgrees() async throws {
        let cached = #"{"models": {"m": {"context_window": 1000, "max_output_tokens": 50, "prices": {"input": 100000, "cached_input": 10000, "output": 200000, "cache_write": 150000, "cache_storage_per_hour": 360000}}}}"#
        let dir = try CLI.temporaryDirectory(files: ["models.json": cached])
        let input = (1...3).map { i in
            #"{"id":"c\#(i)","plan":{"shared_parts":[{"type":"text","text":"12345678"}],"cache":{"ttl_seconds":1800},"calls":[{"model":"m","parts":[{"type":"text","text":"q\#(i)"}],"config":{"max_tokens":3}}]}}"#
        }.joined(separator: "\n")
        let run = try await CLI.run(["--models", "models.json", "--concurrency", "1", "--stats-json", "stats.json"], stdin: input, currentDirectory: dir)
        #expect(run.status == 0, "\(run.stderr)")
        try #require(run.records.count == 3)
        // The mock writes the 2 shared tokens ($0.15 each) and keeps them 30 minutes ($0.18 each).
        let first = run.records[0]
        #expect(first[path: "telemetry.cost.cache_write_usd"] as? Double == 0.3)
        #expect(first[path: "telemetry.cost.cache_storage_usd"] as? Double == 0.36)
        let requests = (first[path: "telemetry.cost.requests"] as? [[String: Any]])?.map { $0["request"] as? String }
        #expect(requests == ["call", "cache_creation", "cache_storage"])
        for later in run.records.dropFirst() {
            #expect(later[path: "telemetry.cost.cache_write_usd"] as? Double == 0)
            #expect((later[path: "telemetry.cost.requests"] as? [[String: Any]])?.count == 1)
        }
        let sum = run.records.compactMap { $0[path: "telemetry.cost.usd"] as? Double }.reduce(0, +)
        #expect(run.stderr.contains(String(format: "pipeline: cost $%.6f at catalog prices", sum)), "\(run.stderr)")
        let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("stats.json"))) as? [String: Any]
        let total = try #require((stats?["cost"] as? [String: Any])?["usd"] as? Double)
        #expect(abs(total - sum) < 0.005 && abs(total - sum) < 1e-8, "to the cent, and here to the nano-dollar")
        #expect((stats?["cost"] as? [String: Any])?["priced_commands"] as? Int == 3)
        let (valid, report) = try await CLI.validate(run.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
        let (statsValid, statsReport) = try await CLI.validate(String(decoding: try Data(contentsOf: dir.appendingPathComponent("stats.json")), as: UTF8.self), against: "stats.schema.json")
        #expect(statsValid, "\(statsReport)")
    }

    /// `--max-cost` reserves the cache's creation and storage before the command that will
    /// create it: a budget the call fits in, but not the cache, stops it.
    @Test func theBudgetReservesTheCacheBeforeTheCommandThatCreatesIt() async throws {
        // The call: 1 prompt token ($0.1) + max_tokens 3 ($0.6) + the 2 shared tokens ($0.2) = $0.9;
        // the cache: 2 tokens written ($0.3), one warm-up token ($0.2), 30 minutes of storage ($0.36).
        let cached = #"{"models": {"m": {"context_window": 1000, "max_output_tokens": 50, "prices": {"input": 100000, "output": 200000, "cache_write": 150000, "cache_storage_per_hour": 360000}}}}"#
        let dir = try CLI.temporaryDirectory(files: ["models.json": cached])
        let command = #"{"id":"c","plan":{"shared_parts":[{"type":"text","text":"12345678"}],"cache":{"ttl_seconds":1800},"calls":[{"model":"m","parts":[{"type":"text","text":"q"}],"config":{"max_tokens":3}}]}}"#
        let tight = try await CLI.run(["--models", "models.json", "--max-cost", "1.5"], stdin: command, currentDirectory: dir)
        #expect(tight.records.first?[path: "error.kind"] as? String == "budget_exceeded", "\(tight.stdout)")
        let enough = try await CLI.run(["--models", "models.json", "--max-cost", "1.8"], stdin: command, currentDirectory: dir)
        #expect(enough.records.first?["status"] as? String == "succeeded", "\(enough.stdout)")
        #expect(enough.stderr.contains("budget $1.80 (--max-cost): not reached"), "\(enough.stderr)")
    }

    @Test func unknownModelsRunUncostedAndAreNamedOnce() async throws {
        let run = try await CLI.run([], stdin: [call("a", model: "my-model"), call("b", model: "my-model")].joined(separator: "\n"))
        #expect(run.status == 0)
        #expect(run.records.allSatisfy { $0[path: "telemetry.cost"] is NSNull })
        #expect(run.stderr.components(separatedBy: "model 'my-model' is not in the model catalog: it runs unchecked and uncosted").count == 2, "once: \(run.stderr)")
        #expect(!run.stderr.contains("cost $"), "nothing priced, no budget: no cost line")
        let quiet = try await CLI.run(["--quiet"], stdin: call("a", model: "my-model"))
        #expect(quiet.stderr.isEmpty)
    }

    @Test func preflightFailuresAreRecordsBeforeAnyCall() async throws {
        let dir = try CLI.temporaryDirectory(files: ["models.json": models])
        let image = #"{"id":"img","plan":{"calls":[{"model":"m","parts":[{"type":"inline","mime_type":"image/png","data":"iVBO"}]}]}}"#
        let long = call("long", String(repeating: "abcd", count: 150))
        let run = try await CLI.run(["--models", "models.json", "--quiet"], stdin: [image, long, call("ok")].joined(separator: "\n"), currentDirectory: dir)
        #expect(run.status == 1)
        try #require(run.records.count == 3, "\(run.stderr)")
        #expect(run.records[0][path: "error.kind"] as? String == "capability_missing")
        #expect(run.records[0][path: "error.path"] as? String == "plan.calls[0].parts[0]")
        #expect((run.records[0][path: "error.message"] as? String)?.contains("model 'm' does not accept image input") == true)
        #expect(run.records[1][path: "error.kind"] as? String == "invalid_command")
        #expect((run.records[1][path: "error.message"] as? String)?.contains("100-token context window of 'm'") == true)
        #expect((run.records[1][path: "telemetry.calls"] as? [Any])?.isEmpty == true)
        #expect(run.records[2]["status"] as? String == "succeeded")
        let (valid, report) = try await CLI.validate(run.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
    }

    /// `pipeline validate --models` makes the same pre-flight checks as `run`, and runs nothing.
    @Test func validateChecksCommandsAgainstTheCatalog() async throws {
        let dir = try CLI.temporaryDirectory(files: ["models.json": models])
        let image = #"{"id":"img","plan":{"calls":[{"model":"m","parts":[{"type":"inline","mime_type":"image/png","data":"iVBO"}]}]}}"#
        let long = call("long", String(repeating: "abcd", count: 150))
        let input = [image, long, call("ok"), call("unknown", model: "not-catalogued")].joined(separator: "\n")
        let checked = try await CLI.run(["validate", "--models", "models.json", "--quiet"], stdin: input, currentDirectory: dir)
        let ran = try await CLI.run(["--models", "models.json", "--quiet"], stdin: input, currentDirectory: dir)
        #expect(checked.status == 1)
        try #require(checked.records.count == 4, "\(checked.stderr)")
        #expect(checked.records.map { $0["status"] as? String } == ["failed", "failed", "valid", "valid"])
        // The same errors as run gives (run may count tokens with the provider; validate calls
        // no provider and says it estimated).
        for i in 0..<2 {
            #expect(checked.records[i][path: "error.kind"] as? String == ran.records[i][path: "error.kind"] as? String)
            #expect(checked.records[i][path: "error.path"] as? String == ran.records[i][path: "error.path"] as? String)
        }
        #expect(checked.records[0][path: "error.kind"] as? String == "capability_missing")
        #expect(checked.records[0][path: "error.message"] as? String == ran.records[0][path: "error.message"] as? String)
        #expect((checked.records[1][path: "error.message"] as? String)?.contains("(estimated at 4 bytes of text a token), more than the 100-token context window of 'm'") == true)
        // Without --models only the built-in catalog applies: "m" is not in it, so all pass.
        let plain = try await CLI.run(["validate", "--quiet"], stdin: input, currentDirectory: dir)
        #expect(plain.records.allSatisfy { $0["status"] as? String == "valid" }, "\(plain.stdout)")
    }

    @Test func maxCostStopsTakingCommandsAndTheSummarySaysSo() async throws {
        let dir = try CLI.temporaryDirectory(files: ["models.json": models])
        let input = (1...5).map { call("c\($0)") }.joined(separator: "\n")
        let run = try await CLI.run(["--models", "models.json", "--max-cost", "2", "--concurrency", "1"], stdin: input, currentDirectory: dir)
        #expect(run.status == 1)
        #expect(run.records.map { $0["status"] as? String } == ["succeeded", "succeeded", "failed", "failed", "failed"])
        #expect(run.records.dropFirst(2).allSatisfy { $0[path: "error.kind"] as? String == "budget_exceeded" })
        #expect(run.stderr.contains("pipeline: budget $2.00 (--max-cost) reached: 3 commands not started (budget_exceeded)"), "\(run.stderr)")
        #expect(run.stderr.contains("cost $1.600000"))
        let (valid, report) = try await CLI.validate(run.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
    }

    @Test(arguments: [
        (["--models", "/no/such.json"], "cannot open /no/such.json"),
        (["--max-cost", "-1"], "option '--max-cost' needs an amount in US dollars from 0 to 1000000"),
        (["--max-cost", "nan"], "option '--max-cost' needs an amount"),
        (["--max-cost", "1e309"], "option '--max-cost' needs an amount"),
    ])
    func badCatalogOptionsAreUsageErrors(_ arguments: [String], _ message: String) async throws {
        let run = try await CLI.run(arguments, stdin: call("a"))
        #expect(run.status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains(message), "\(run.stderr)")
    }

    @Test func aBadCatalogFileSaysWhere() async throws {
        let dir = try CLI.temporaryDirectory(files: ["models.json": #"{"models": {"m": {"context_window": 100, "max_output_tokens": 50, "prices": {"input": "cheap", "output": 1}}}}"#])
        let run = try await CLI.run(["--models", "models.json"], stdin: call("a"), currentDirectory: dir)
        #expect(run.status == 2)
        #expect(run.stderr.contains(#"option '--models models.json': models.m.prices.input: expected a number from 0 to 1000000, got "cheap""#), "\(run.stderr)")
    }
}
