import Foundation
import Testing

@Suite struct CLIFaultTests {
    @Test func theFaultScenarioIsAccountedForExactlyThroughTheCLI() async throws {
        let count = 20_000
        let input = (0..<count).map { #"{"id":"c\#($0)","model":"mock","prompt":"p\#($0)"}"# }.joined(separator: "\n")
        let run = try await CLI.run(
            ["--unordered", "--concurrency", "1024", "--call-timeout", "0.05", "--max-attempts", "3",
             "--mock-faults", "retryable=0.2,fatal=0.02,hang=0.01,jitter_ms=2,seed=7"], stdin: input)
        let records = run.records
        #expect(records.count == count, "one line per command")
        #expect(Set(records.compactMap { $0["index"] as? Int }) == Set(0..<count))
        #expect(Set(records.compactMap { $0["id"] as? String }).count == count)
        let succeeded = records.filter { $0["status"] as? String == "succeeded" }
        let failed = records.filter { $0["status"] as? String == "failed" }
        #expect(succeeded.count + failed.count == count)
        #expect(run.status == (failed.isEmpty ? 0 : 1))
        #expect(run.stderr.contains("\(succeeded.count) succeeded, \(failed.count) failed"))

        let attempts = records.compactMap { ($0[path: "telemetry.calls"] as? [[String: Any]])?.first?["attempts"] as? Int }
        #expect(attempts.count == count)
        #expect(attempts.allSatisfy { (1...3).contains($0) })
        let fatal = failed.filter { $0[path: "error.details.code"] as? String == "invalid_request" }
        #expect(!fatal.isEmpty)
        #expect(fatal.allSatisfy { $0[path: "error.retryable"] as? Bool == false })
        for record in failed where !fatal.contains(where: { $0["id"] as? String == record["id"] as? String }) {
            #expect(record[path: "error.retryable"] as? Bool == true)
            #expect(["timeout", "provider_error"].contains(record[path: "error.kind"] as? String ?? ""))
        }
    }

    @Test func badFaultSpecsAreUsageErrors() async throws {
        for spec in ["retryable=2", "boom=0.1", "retryable=0.6,fatal=0.6", "seed"] {
            let run = try await CLI.run(["--mock-faults", spec], stdin: "")
            #expect(run.status == 2, "\(spec)")
            #expect(run.stderr.contains("--mock-faults"))
        }
    }

    @Test func aCommandDeadlineEndsInTimeout() async throws {
        let run = try await CLI.run(["--quiet", "--timeout", "0.2", "--mock-latency-ms", "5000"], stdin: #"{"id":"slow","model":"m","prompt":"x"}"#)
        #expect(run.status == 1)
        #expect(run.records.first?[path: "error.kind"] as? String == "timeout")
        #expect((run.records.first?[path: "error.message"] as? String)?.contains("deadline of 0.2 s") == true)
    }
}
