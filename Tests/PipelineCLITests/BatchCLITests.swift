import Foundation
import Testing

/// `pipeline batch` on the mock provider, whose jobs live in `JOBFILE.mock/` so that separate
/// processes (submit, status, collect) share them as they would share a real provider.
@Suite struct BatchCLITests {
    private func commands(_ n: Int) -> String {
        (0..<n).map { i in
            i % 3 == 0
                ? #"{"id":"c\#(i)","model":"m","prompts":["first \#(i)","second \#(i)"],"system":"terse","metadata":{"n":\#(i)}}"#
                : #"{"model":"m","prompt":"hello \#(i)"}"#
        }.joined(separator: "\n") + "\n"
    }

    private func texts(_ run: CLI.Run) -> [[String]] {
        run.records.map { ($0["responses"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String } }
    }

    private func mockJobs(_ job: URL) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: job.path + ".mock").count { $0.hasSuffix(".json") }
    }

    @Test func aSubmitKilledBetweenSendingAndRecordingIsReconciledAndCollectMatchesRun() async throws {
        let dir = try CLI.temporaryDirectory()
        let job = dir.appendingPathComponent("job.json")
        let input = commands(30)   // 40 requests: 10 commands of two calls, 20 of one
        var environment = ProcessInfo.processInfo.environment
        environment["PIPELINE_BATCH_TEST_CRASH_AFTER_SUBMITS"] = "2"
        let killed = try await CLI.run(["batch", "submit", "--job", job.path, "--max-requests-per-job", "7", "--quiet"], stdin: input, environment: environment)
        #expect(killed.status == 137)
        let state = try String(contentsOf: job, encoding: .utf8)
        #expect(state.contains(#""state":"submitting""#), "the second job is in doubt: \(state)")
        #expect(try mockJobs(job) == 2, "two jobs reached the provider")

        let rerun = try await CLI.run(["batch", "submit", "--job", job.path, "--max-requests-per-job", "7"], stdin: input)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(rerun.stderr.contains("already submitted"), "the in-doubt job was found by its marker: \(rerun.stderr)")
        #expect(try mockJobs(job) == 6, "40 requests in jobs of 7: six jobs, none twice")
        // A third run has nothing left to send.
        let again = try await CLI.run(["batch", "submit", "--job", job.path, "--max-requests-per-job", "7", "--quiet"], stdin: input)
        #expect(again.status == 0)
        #expect(try mockJobs(job) == 6)

        let status = try await CLI.run(["batch", "status", job.path])
        #expect(status.records.first?["state"] as? String == "ended")
        #expect(status.records.first?["succeeded"] as? Int == 40)

        let first = try await CLI.run(["batch", "collect", job.path, "--quiet"])
        let second = try await CLI.run(["batch", "collect", job.path, "--quiet"])
        let live = try await CLI.run(["--quiet"], stdin: input)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout == second.stdout, "collecting twice gives the same lines")
        #expect(first.records.count == 30)
        #expect(texts(first) == texts(live))
        #expect(first.records.map { $0["id"] as? String } == live.records.map { $0["id"] as? String })
        #expect(first.records.map { $0["input_hash"] as? String } == live.records.map { $0["input_hash"] as? String })
        #expect(first.records.map { $0["metadata"] as? NSDictionary } == live.records.map { $0["metadata"] as? NSDictionary })
        #expect(first.records.allSatisfy { $0[path: "telemetry.batch"] as? Bool == true && ($0[path: "telemetry.batch_job"] as? String)?.hasPrefix("mockbatch-") == true })
        let (valid, report) = try await CLI.validate(first.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
    }

    /// Issue 14 item 4: collect prices each answer at the catalog's batch prices — the same
    /// usage as a live run, with the model's batch discount off every price.
    @Test func collectPricesAtBatchPricesFromTheCatalog() async throws {
        // "m": $0.1 per prompt token, $0.3 per completion token, a 40% batch discount; "other" is unpriced.
        let models = #"{"models": {"m": {"context_window": 100000, "max_output_tokens": 1000, "prices": {"input": 100000, "output": 300000, "batch_discount": 0.4}}}}"#
        let dir = try CLI.temporaryDirectory(files: ["models.json": models])
        let job = dir.appendingPathComponent("job.json")
        let input = commands(6) + #"{"id":"unpriced","model":"other","prompt":"hi"}"# + "\n"
        let submitted = try await CLI.run(["batch", "submit", "--job", job.path, "--quiet"], stdin: input)
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let collected = try await CLI.run(["batch", "collect", job.path, "--models", "models.json"], currentDirectory: dir)
        let live = try await CLI.run(["--quiet", "--models", "models.json"], stdin: input, currentDirectory: dir)
        #expect(collected.status == 0, "\(collected.stderr)")
        #expect(collected.records.count == 7 && live.records.count == 7)
        var total = 0.0
        for (batched, running) in zip(collected.records, live.records) {
            let usage = batched[path: "usage.prompt_tokens"] as? Int
            #expect(usage != nil && usage == running[path: "usage.prompt_tokens"] as? Int, "same usage as the live run")
            guard batched["id"] as? String != "unpriced" else {
                #expect(batched[path: "telemetry.cost"] is NSNull, "a model not in the catalog runs uncosted")
                continue
            }
            let prompt = Double(batched[path: "usage.prompt_tokens"] as? Int ?? -1)
            let completion = Double(batched[path: "usage.completion_tokens"] as? Int ?? -1)
            let expected = (prompt * 0.1 + completion * 0.3) * 0.6
            let cost = batched[path: "telemetry.cost.usd"] as? Double ?? -1
            #expect(abs(cost - expected) < 1e-9, "\(cost) ≠ \(expected) = (0.1 × prompt + 0.3 × completion) × (1 − 0.4)")
            let full = running[path: "telemetry.cost.usd"] as? Double ?? -1
            #expect(abs(cost - full * 0.6) < 1e-9, "batch price = live price × 0.6: \(cost) vs \(full)")
            #expect(batched[path: "responses.0.cost.input_usd"] as? Double != nil, "each response carries its cost")
            total += cost
        }
        let expectedLine = String(format: "cost $%.6f at catalog batch prices (6 commands priced, 1 unpriced)", total)
        #expect(collected.stderr.contains(expectedLine), "\(expectedLine) in \(collected.stderr)")
        let (valid, report) = try await CLI.validate(collected.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
        // Without --models the built-in catalog does not know "m": no cost, no cost line.
        let plain = try await CLI.run(["batch", "collect", job.path])
        #expect(plain.records.allSatisfy { $0[path: "telemetry.cost"] is NSNull })
        #expect(!plain.stderr.contains("cost $"), "\(plain.stderr)")
        let misplaced = try await CLI.run(["batch", "status", job.path, "--models", "models.json"], currentDirectory: dir)
        #expect(misplaced.status == 2 && misplaced.stderr.contains("option '--models' does not apply to 'batch status'"), "\(misplaced.stderr)")
    }

    @Test func commandsABatchCannotCarryAreFailedRecordsInPlaceAndTheRestRuns() async throws {
        let dir = try CLI.temporaryDirectory()
        let job = dir.appendingPathComponent("job.json")
        let input = """
        {"id":"ok","model":"m","prompt":"fine"}
        {"id":"fb","model":"m","prompt":"x","fallback_model":"m2"}
        {"id":"file","model":"m","files":["a.pdf"],"prompt":"read it"}
        not json
        {"id":"cached","model":"m","prompt":"y","cache":{"ttl_seconds":60}}
        {"id":"down","model":"down","prompt":"z"}
        """
        let submit = try await CLI.run(["batch", "submit", "--job", job.path, "--mock-fail-model", "down", "--quiet"], stdin: input)
        #expect(submit.status == 0, "\(submit.stderr)")
        #expect(submit.records.first?["rejected"] as? Int == 3)
        let collected = try await CLI.run(["batch", "collect", job.path, "--quiet"])
        #expect(collected.status == 1)
        let records = collected.records
        #expect(records.map { $0["index"] as? Int } == Array(0..<6))
        #expect(records.map { $0["status"] as? String } == ["succeeded", "failed", "failed", "failed", "succeeded", "failed"])
        #expect(records[1][path: "error.kind"] as? String == "capability_missing")
        #expect(records[1][path: "error.path"] as? String == "plan.fallback_call")
        #expect(records[2][path: "error.kind"] as? String == "capability_missing")
        #expect(records[2][path: "error.path"] as? String == "plan.shared_parts[0]")
        #expect(records[3][path: "error.kind"] as? String == "invalid_command")
        #expect(records[4][path: "telemetry.cache.uncached_reason"] as? String != nil)
        #expect(records[5][path: "error.details.code"] as? String == "unavailable")
        #expect(records[5][path: "error.details.failed_calls"] as? [Int] == [0])
        let (valid, report) = try await CLI.validate(collected.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
    }

    @Test func collectBeforeTheEndWaitsOrSaysSo() async throws {
        let dir = try CLI.temporaryDirectory()
        let job = dir.appendingPathComponent("job.json")
        let submit = try await CLI.run(["batch", "submit", "--job", job.path, "--mock-batch-delay-ms", "600000", "--quiet"], stdin: commands(3))
        #expect(submit.status == 0)
        let early = try await CLI.run(["batch", "collect", job.path])
        #expect(early.status == 4)
        #expect(early.stdout.isEmpty)
        #expect(early.stderr.contains("0/4 requests done"))
        let waited = try await CLI.run(["batch", "status", job.path, "--wait", "--poll-seconds", "0.05", "--timeout", "0.3"])
        #expect(waited.status == 4)
        #expect(waited.records.first?["state"] as? String == "running")
    }

    @Test func cancelStopsTheJobsAndLaterSubmitsAndCollectReportsEveryCommand() async throws {
        let dir = try CLI.temporaryDirectory()
        let job = dir.appendingPathComponent("job.json")
        let input = commands(6)
        var environment = ProcessInfo.processInfo.environment
        environment["PIPELINE_BATCH_TEST_CRASH_AFTER_SUBMITS"] = "1"
        // One job sent (and recorded in doubt), two never sent.
        let killed = try await CLI.run(
            ["batch", "submit", "--job", job.path, "--max-requests-per-job", "3", "--mock-batch-delay-ms", "600000", "--quiet"], stdin: input,
            environment: environment)
        #expect(killed.status == 137)
        let cancel = try await CLI.run(["batch", "cancel", job.path])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        #expect(cancel.records.first?["in_doubt_jobs"] as? Int == 1)
        // The re-run finds the in-doubt job, and sends nothing more.
        let rerun = try await CLI.run(["batch", "submit", "--job", job.path, "--max-requests-per-job", "3", "--quiet"], stdin: input)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(try mockJobs(job) == 1)
        _ = try await CLI.run(["batch", "cancel", job.path])
        let collected = try await CLI.run(["batch", "collect", job.path, "--quiet"])
        #expect(collected.status == 1)
        #expect(collected.records.count == 6)
        #expect(collected.records.allSatisfy { $0["status"] as? String == "failed" && $0[path: "error.kind"] as? String == "cancelled" })
        #expect(collected.records.map { $0["index"] as? Int } == Array(0..<6))
        let retry = try await CLI.run(["batch", "retry", job.path])
        #expect(retry.status == 2 && retry.stderr.contains("was cancelled"), "\(retry.stderr)")
        #expect(try mockJobs(job) == 1)
    }

    @Test func retryWaitsForTheEndThenResendsOnlyTheFailedRequestsAndCollectMerges() async throws {
        let dir = try CLI.temporaryDirectory()
        let input = (0..<4).map { #"{"id":"c\#($0)","model":"\#($0 % 2 == 1 ? "down" : "m")","prompt":"hello \#($0)"}"# }.joined(separator: "\n")
        // Jobs that have not ended: refused, nothing sent.
        let slow = dir.appendingPathComponent("slow.json")
        #expect(try await CLI.run(["batch", "submit", "--job", slow.path, "--mock-fail-model", "down", "--mock-batch-delay-ms", "600000", "--quiet"], stdin: input).status == 0)
        let early = try await CLI.run(["batch", "retry", slow.path])
        #expect(early.status == 4 && early.stderr.contains("wait until every job has ended"), "\(early.stderr)")
        #expect(try mockJobs(slow) == 1)

        let job = dir.appendingPathComponent("job.json")
        #expect(try await CLI.run(["batch", "submit", "--job", job.path, "--mock-fail-model", "down", "--quiet"], stdin: input).status == 0)
        let first = try await CLI.run(["batch", "collect", job.path, "--quiet"])
        #expect(first.status == 1)
        #expect(first.records.map { $0["status"] as? String } == ["succeeded", "failed", "succeeded", "failed"])
        // The retry's mock answers every model (the failing one is an option of submit only).
        let retry = try await CLI.run(["batch", "retry", job.path])
        #expect(retry.status == 0, "\(retry.stderr)")
        #expect(retry.records.first?["retried_requests"] as? Int == 2 && retry.records.first?["commands"] as? Int == 2)
        #expect(retry.stderr.contains("2 requests of 2 commands sent again in 1 job"), "\(retry.stderr)")
        let retryJob = try #require((retry.records.first?["jobs"] as? [String])?.first)
        #expect(try mockJobs(job) == 2)
        let merged = try await CLI.run(["batch", "collect", job.path, "--quiet"])
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(merged.records.map { $0["id"] as? String } == ["c0", "c1", "c2", "c3"])
        #expect(merged.records.map { $0[path: "telemetry.batch_job"] as? String == retryJob } == [false, true, false, true])
        #expect(merged.records[0]["responses"] as? [[String: Any]] != nil)
        let (valid, report) = try await CLI.validate(merged.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
        #expect(try await CLI.run(["batch", "collect", job.path, "--quiet"]).stdout == merged.stdout, "collecting twice gives the same lines")
        let nothing = try await CLI.run(["batch", "retry", job.path])
        #expect(nothing.status == 0 && nothing.stderr.contains("nothing to retry"), "\(nothing.stderr)")
        #expect(try mockJobs(job) == 2)
        #expect(try await CLI.run(["batch", "--help"]).stdout.contains("pipeline batch retry JOBFILE"))
    }

    @Test func theJobFileMustMatchItsInputAndBeIntact() async throws {
        let dir = try CLI.temporaryDirectory()
        let job = dir.appendingPathComponent("job.json")
        #expect(try await CLI.run(["batch", "submit", "--job", job.path, "--quiet"], stdin: commands(2)).status == 0)
        let other = try await CLI.run(["batch", "submit", "--job", job.path], stdin: commands(3))
        #expect(other.status == 2)
        #expect(other.stderr.contains("the input is not the one job file"))
        try Data("{\"format\":\"pipeline-batch/1\",\"chunks\":[{\"requests\":-1}]}".utf8).write(to: job)
        let damaged = try await CLI.run(["batch", "status", job.path])
        #expect(damaged.status == 2)
        #expect(damaged.stderr.contains("is not a usable pipeline batch job file"))
        let usage = try await CLI.run(["batch", "submit"], stdin: "")
        #expect(usage.status == 2)
        #expect(usage.stderr.contains("needs --job JOBFILE"))
        let unknown = try await CLI.run(["batch", "sumbit"])
        #expect(unknown.stderr.contains("did you mean 'submit'?"))
        let noBatch = try await CLI.run(["batch", "submit", "--job", dir.appendingPathComponent("j2.json").path, "--mock-capabilities", "generation"], stdin: commands(1))
        #expect(noBatch.status == 2)
        #expect(noBatch.stderr.contains("has no batch service"))
    }

    /// The batch key rule: without --api-key-env the provider picks the key variable, so a job
    /// file for a provider that reads a key (here edited to say anthropic, with an endpoint the
    /// command repeats) is refused (exit 2, before anything is read or sent) unless the command
    /// names that provider; another --provider is refused naming both; --api-key-env or
    /// --provider anthropic pass the rule (and then fail to connect: nothing listens there).
    @Test func aJobFileCannotChooseTheProvidersKeyVariable() async throws {
        let dir = try CLI.temporaryDirectory()
        let job = dir.appendingPathComponent("job.json")
        #expect(try await CLI.run(["batch", "submit", "--job", job.path, "--quiet"], stdin: commands(2)).status == 0)
        #expect(try await CLI.run(["batch", "status", job.path, "--provider", "mock"]).status == 0, "every action takes --provider")
        let original = try String(contentsOf: job, encoding: .utf8)
        #expect(original.contains(#""provider":"mock""#) && original.contains(#""base_url":null"#), "\(original)")
        let base = "https://127.0.0.1:9"
        try original.replacingOccurrences(of: #""provider":"mock""#, with: #""provider":"anthropic""#)
            .replacingOccurrences(of: #""base_url":null"#, with: #""base_url":"\#(base)""#).write(to: job, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["ANTHROPIC_API_KEY"] = nil
        for action in ["status", "collect", "retry", "cancel"] {
            let refused = try await CLI.run(["batch", action, job.path, "--base-url", base], environment: environment)
            #expect(refused.status == 2, "\(action): \(refused.stderr)")
            #expect(refused.stderr.contains("--provider anthropic") && refused.stderr.contains("no --provider"), "\(action): \(refused.stderr)")
            #expect(refused.stdout.isEmpty)
        }
        let other = try await CLI.run(["batch", "status", job.path, "--provider", "openai", "--base-url", base], environment: environment)
        #expect(other.status == 2)
        #expect(other.stderr.contains("--provider anthropic") && other.stderr.contains("--provider openai"), "\(other.stderr)")
        // Naming the provider passes the rule: what stops it now is the endpoint, where nothing listens.
        let named = try await CLI.run(["batch", "status", job.path, "--provider", "anthropic", "--base-url", base], environment: environment)
        #expect(named.status == 1 && named.stderr.contains("cannot connect"), "\(named.stderr)")
        // Naming the key variable without --provider does not: the provider still decides the
        // endpoint, so an edited job file could send that variable's key to another provider.
        try original.replacingOccurrences(of: #""provider":"mock""#, with: #""provider":"anthropic""#)
            .replacingOccurrences(of: #""base_url":null"#, with: #""base_url":"\#(base)""#)
            .replacingOccurrences(of: #""api_key_env":null"#, with: #""api_key_env":"PIPELINE_TEST_UNSET_KEY""#).write(to: job, atomically: true, encoding: .utf8)
        let variableOnly = try await CLI.run(["batch", "status", job.path, "--base-url", base, "--api-key-env", "PIPELINE_TEST_UNSET_KEY"], environment: environment)
        #expect(variableOnly.status == 2 && variableOnly.stderr.contains("--provider anthropic"), "\(variableOnly.stderr)")
        let explicit = try await CLI.run(
            ["batch", "status", job.path, "--provider", "anthropic", "--base-url", base, "--api-key-env", "PIPELINE_TEST_UNSET_KEY"], environment: environment)
        #expect(explicit.status == 1 && explicit.stderr.contains("cannot connect"), "\(explicit.stderr)")
    }

    /// The job file's provider decides which key variable is read by default: a --provider that
    /// differs from it is refused (exit 2) before anything is sent; the same one is accepted.
    @Test func aProviderOtherThanTheJobFilesIsRefused() async throws {
        let dir = try CLI.temporaryDirectory()
        let job = dir.appendingPathComponent("job.json")
        let input = commands(2)
        #expect(try await CLI.run(["batch", "submit", "--job", job.path, "--quiet"], stdin: input).status == 0)
        let other = try await CLI.run(["batch", "submit", "--job", job.path, "--provider", "anthropic", "--quiet"], stdin: input)
        #expect(other.status == 2, "\(other.stderr)")
        #expect(other.stderr.contains("--provider mock") && other.stderr.contains("--provider anthropic"), "\(other.stderr)")
        let same = try await CLI.run(["batch", "submit", "--job", job.path, "--provider", "mock", "--quiet"], stdin: input)
        #expect(same.status == 0, "\(same.stderr)")
    }
}
