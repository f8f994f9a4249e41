import Foundation
import Testing

/// Issue 27: commands that share work (one upload, one cache) and outnumber `--concurrency`,
/// while that shared work is retried. Before the fix a retry's backoff lent the maker's slot,
/// the commands waiting for the shared work held every slot, and the maker never got one back:
/// the run hung forever. Every run here is bounded (`timeout`): a hang fails the test.
@Suite struct SharedWorkTests {
    static let bound = Duration.seconds(45)
    static let commands = 24

    enum Shared: String, CaseIterable, Sendable {
        case file, cache

        /// `count` commands sharing one file (shorthand) or one cache (a plan with shared text).
        func input(_ count: Int) -> String {
            (1...count).map { i in
                switch self {
                case .file: #"{"id":"c\#(i)","model":"m","prompt":"question \#(i)","files":["paper.pdf"]}"#
                case .cache:
                    #"{"id":"c\#(i)","plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"question \#(i)"}]}],"shared_parts":[{"type":"text","text":"the shared context"}],"cache":{"key":"K"}}}"#
                }
            }.joined(separator: "\n")
        }

        var faultKey: String { self == .file ? "upload_failures" : "cache_failures" }
        var failureKind: String { self == .file ? "upload_failed" : "cache_failed" }
    }

    func run(_ shared: Shared, failures: Int, concurrency: Int = 4, extra: [String] = [], input: String? = nil) async throws -> PipelineRun {
        let dir = try CLI.temporaryDirectory(files: ["paper.pdf": "%PDF-1.4 a paper", "other.pdf": "%PDF-1.4 another"])
        return try await CLI.run(
            ["--quiet", "--concurrency", "\(concurrency)", "--max-attempts", "3", "--mock-faults", "\(shared.faultKey)=\(failures),retry_after_ms=150"] + extra,
            stdin: input ?? shared.input(Self.commands), currentDirectory: dir, timeout: Self.bound)
    }

    /// The shared work fails once, then twice (each retried after 150 ms): every command ends, and
    /// succeeds, with the work done once for all of them.
    @Test(arguments: Shared.allCases, [1, 2])
    func sharedWorkRetriedWhileCommandsOutnumberConcurrencyEnds(_ shared: Shared, failures: Int) async throws {
        let run = try await run(shared, failures: failures)
        #expect(!run.timedOut, "the run hung (issue 27): \(run.stdout.count) bytes of results")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.records.count == Self.commands)
        #expect(run.records.allSatisfy { $0["status"] as? String == "succeeded" }, "\(run.records.filter { $0["status"] as? String != "succeeded" }.prefix(2))")
        switch shared {
        case .file:
            #expect(run.records.compactMap { $0[path: "telemetry.uploads.performed"] as? Int }.reduce(0, +) == 1, "one upload for all")
        case .cache:
            #expect(run.records.filter { $0[path: "telemetry.cache.created"] as? Bool == true }.count == 1, "one cache for all")
        }
    }

    /// The shared work fails until its attempts run out (3): the commands that waited for it
    /// fail with its error, at once; a command that came after starts it again. Every command
    /// ends; the first one, which started the work, fails.
    @Test(arguments: Shared.allCases)
    func sharedWorkOutOfAttemptsFailsItsWaitersAndTheRunEnds(_ shared: Shared) async throws {
        let run = try await run(shared, failures: 3)
        #expect(!run.timedOut, "the run hung (issue 27)")
        #expect(run.records.count == Self.commands)
        #expect(run.records.first?["status"] as? String == "failed")
        #expect(run.records.first?[path: "error.kind"] as? String == shared.failureKind)
        for record in run.records where record["status"] as? String != "succeeded" {
            #expect(record[path: "error.kind"] as? String == shared.failureKind, "\(record)")
        }
    }

    /// The endpoint is down for the shared work: every command fails with its error, and in the
    /// time of one command's attempts — all of them waited for the one retried request. The mock
    /// numbers its failures, so every error naming the third shows that no command started the
    /// work again after another's attempts ran out (which would take a retry time per wave).
    @Test(arguments: Shared.allCases)
    func endpointDownFailsEveryCommandAsFastAsOne(_ shared: Shared) async throws {
        let run = try await run(shared, failures: 1_000_000_000)
        #expect(!run.timedOut, "the run hung (issue 27)")
        #expect(run.status == 1)
        #expect(run.records.count == Self.commands)
        for record in run.records {
            #expect(record["status"] as? String == "failed")
            #expect(record[path: "error.kind"] as? String == shared.failureKind)
            let message = record[path: "error.message"] as? String ?? ""
            #expect(message.contains(" 3 of the first "), "one retried request for all commands: \(message)")
        }
    }

    /// Commands that never lend their slot (two files: their uploads run side by side) wait for the
    /// upload a one-file command makes. The maker of shared work keeps its slot through its
    /// backoff, so the waiters holding theirs cannot keep it from finishing.
    @Test func commandsThatKeepTheirSlotWhileWaitingStillFinish() async throws {
        let input = ([#"{"id":"maker","model":"m","prompt":"first","files":["paper.pdf"]}"#]
            + (1...12).map { #"{"id":"w\#($0)","model":"m","prompt":"q\#($0)","files":["paper.pdf","other.pdf"]}"# }).joined(separator: "\n")
        let run = try await run(.file, failures: 2, concurrency: 3, input: input)
        #expect(!run.timedOut, "the run hung (issue 27)")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.records.count == 13)
        #expect(run.records.allSatisfy { $0["status"] as? String == "succeeded" })
    }
}

/// The guard for the class (issue 27): many commands sharing a handful of files and caches, one
/// activity or several (two files, two calls), through seeded faults — retryable errors, calls
/// that hang until `--call-timeout`, uploads and cache creations that fail until their attempts
/// run out — at several concurrencies. Every command must end, with one result each. Bounded:
/// a hang fails the test.
@Suite struct SharedWorkStressTests {
    static let count = 200

    /// Five kinds of command over three files and two explicit cache keys (more caches are
    /// derived from the files), in runs of eight commands on the same file and key, so that the
    /// commands working at once wait for the same work.
    static var input: String {
        let files = ["a.pdf", "b.pdf", "c.pdf"]
        return (0..<count).map { i -> String in
            let f = files[(i / 8) % 3], g = files[(i / 8 + 1) % 3]
            switch i % 5 {
            case 0: return #"{"id":"s\#(i)","model":"m","prompt":"one file \#(i)","files":["\#(f)"]}"#
            case 1: return #"{"id":"s\#(i)","model":"m","prompt":"two files \#(i)","files":["\#(f)","\#(g)"]}"#
            case 2:
                return #"{"id":"s\#(i)","plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"cached \#(i)"}]}],"shared_parts":[{"type":"text","text":"context \#(i / 8 % 2)"}],"cache":{"key":"K\#(i / 8 % 2)"}}}"#
            case 3: return #"{"id":"s\#(i)","model":"m","prompt":"file and cache \#(i)","files":["\#(f)"],"cache":{}}"#
            default: return #"{"id":"s\#(i)","model":"m","prompts":["first \#(i)","second \#(i)"],"files":["\#(f)"],"cache":{}}"#
            }
        }.joined(separator: "\n")
    }

    @Test(arguments: [(1, 11), (2, 12), (3, 13), (8, 14), (64, 15)])
    func everyCommandEndsWhateverTheFaultsAndConcurrency(_ concurrency: Int, _ seed: Int) async throws {
        let dir = try CLI.temporaryDirectory(files: ["a.pdf": "%PDF a", "b.pdf": "%PDF b", "c.pdf": "%PDF c"])
        let faults = "retryable=0.2,hang=0.02,retry_after_ms=5,upload_failures=4,cache_failures=4,seed=\(seed)"
        let run = try await CLI.run(
            ["--quiet", "--unordered", "--concurrency", "\(concurrency)", "--max-attempts", "3", "--call-timeout", "0.05", "--mock-faults", faults],
            stdin: Self.input, currentDirectory: dir, timeout: .seconds(60))
        #expect(!run.timedOut, "the run hung at --concurrency \(concurrency) after \(run.lines.count) results")
        #expect([0, 1].contains(run.status), "\(run.stderr)")
        let records = run.records
        #expect(records.count == Self.count)
        #expect(Set(records.compactMap { $0["id"] as? String }) == Set((0..<Self.count).map { "s\($0)" }), "one result per command")
        let statuses = records.map { $0["status"] as? String ?? "?" }
        #expect(statuses.allSatisfy { $0 == "succeeded" || $0 == "failed" })
        let kinds = Set(records.compactMap { $0[path: "error.kind"] as? String })
        #expect(kinds.isSubset(of: ["upload_failed", "cache_failed", "provider_error", "timeout"]), "\(kinds)")
        #expect(statuses.contains("succeeded"), "most commands get through")
    }
}
