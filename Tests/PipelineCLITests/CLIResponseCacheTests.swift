import Foundation
import Testing

/// `--response-cache PATH` and `pipeline cache stats|prune PATH` through the real binary.
@Suite struct CLIResponseCacheTests {
    static func commands(_ count: Int, prefix: String = "q") -> String {
        (0..<count).map { #"{"id":"c\#($0)","model":"m","prompt":"\#(prefix) \#($0)"}"# }.joined(separator: "\n") + "\n"
    }

    static func status(_ record: [String: Any]) -> String? {
        ((record["telemetry"] as? [String: Any])?["calls"] as? [[String: Any]])?.first?["response_cache"] as? String
    }

    static func stats(_ path: String) async throws -> [String: Any] {
        let run = try await CLI.run(["cache", "stats", path])
        #expect(run.status == 0, "\(run.stderr)")
        return (try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    @Test func aSecondRunIsAnsweredFromTheCache() async throws {
        let dir = try CLI.temporaryDirectory()
        let cache = dir.appendingPathComponent("answers.db").path
        let input = Self.commands(50)
        let first = try await CLI.run(["--response-cache", cache, "--quiet"], stdin: input)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.records.map(Self.status) == Array(repeating: "stored", count: 50))
        let second = try await CLI.run(["--response-cache", cache, "--quiet"], stdin: input)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.records.map(Self.status) == Array(repeating: "hit", count: 50))
        // The same answers, no tokens, no attempts.
        func texts(_ run: CLI.Run) -> [String] { run.records.compactMap { (($0["responses"] as? [[String: Any]])?.first?["text"]) as? String } }
        #expect(texts(second) == texts(first) && texts(first).count == 50)
        #expect(second.records.allSatisfy { (($0["usage"] as? [String: Any])?["total_tokens"] as? Int) == 0 })
        #expect(second.records.allSatisfy { ((($0["telemetry"] as? [String: Any])?["calls"] as? [[String: Any]])?.first?["attempts"] as? Int) == 0 })
        let (valid, report) = try await CLI.validate(second.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
        let stats = try await Self.stats(cache)
        #expect(stats["entries"] as? Int == 50 && stats["hits"] as? Int == 50)
        #expect((stats["bytes"] as? Int ?? 0) > 50 * 64 && stats["oldest"] is String && stats["newest"] is String)

        // Another prompt, another TTL: what is not in the cache is asked and stored.
        let mixed = try await CLI.run(["--response-cache", cache, "--response-cache-ttl", "3600", "--quiet"], stdin: Self.commands(2) + Self.commands(1, prefix: "new"))
        #expect(mixed.records.map(Self.status) == ["hit", "hit", "stored"])
    }

    @Test func eventsTellAHit() async throws {
        let dir = try CLI.temporaryDirectory()
        let cache = dir.appendingPathComponent("answers.db").path
        let input = Self.commands(2)
        let cold = try await CLI.run(["--response-cache", cache, "--events", "--quiet"], stdin: input)
        #expect(cold.status == 0)
        let coldTypes = cold.records.compactMap { $0["type"] as? String }
        #expect(coldTypes.filter { $0 == "response_cache_miss" }.count == 2 && coldTypes.filter { $0 == "response_cache_stored" }.count == 2)
        let warm = try await CLI.run(["--response-cache", cache, "--events", "--quiet"], stdin: input)
        let types = warm.records.compactMap { $0["type"] as? String }
        #expect(types.filter { $0 == "response_cache_hit" }.count == 2)
        #expect(!types.contains("attempt_started"))
        // The mock streams: a hit's text arrives as one delta, so deltas still add up to the answer.
        let deltas = warm.records.filter { $0["type"] as? String == "text_delta" && $0["id"] as? String == "c0" }.compactMap { $0["text"] as? String }
        #expect(deltas == ["echo: q 0"])
        let (valid, report) = try await CLI.validate(warm.stdout, against: "event.schema.json")
        #expect(valid, "\(report)")
    }

    @Test func aFileThatIsNotACacheIsAUsageError() async throws {
        let dir = try CLI.temporaryDirectory(files: ["notes.txt": String(repeating: "not a database\n", count: 500)])
        let notes = dir.appendingPathComponent("notes.txt").path
        let before = try String(contentsOfFile: notes, encoding: .utf8)
        let run = try await CLI.run(["--response-cache", notes], stdin: Self.commands(1))
        #expect(run.status == 2 && run.stdout.isEmpty)
        #expect(run.stderr.contains("is not a response cache"), "\(run.stderr)")
        #expect(try String(contentsOfFile: notes, encoding: .utf8) == before)
        let stats = try await CLI.run(["cache", "stats", notes])
        #expect(stats.status == 2 && stats.stderr.contains("is not a response cache"))

        // The SQLite result sink's database is SQLite, but not a cache.
        let results = dir.appendingPathComponent("results.db").path
        #expect(try await CLI.run(["--sink", "sqlite:\(results)", "--quiet"], stdin: Self.commands(1)).status == 0)
        let foreign = try await CLI.run(["--response-cache", results], stdin: Self.commands(1))
        #expect(foreign.status == 2 && foreign.stderr.contains("not a response cache (it holds the table 'results')"), "\(foreign.stderr)")

        let missing = try await CLI.run(["cache", "stats", dir.appendingPathComponent("none.db").path])
        #expect(missing.status == 2)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("none.db").path))
    }

    @Test(arguments: [
        (["--response-cache-ttl", "60"], "needs --response-cache"),
        (["--response-cache", "x.db", "--response-cache-ttl", "0"], "--response-cache-ttl"),
        (["--response-cache", "x.db", "--response-cache-max-mb", "99999999"], "--response-cache-max-mb"),
        (["cache", "stats"], "needs the cache file"),
        (["cache", "purge", "x.db"], "unknown cache action"),
        (["cache", "prune", "x.db", "--max-mb", "-1"], "--max-mb"),
    ])
    func badFlagsAreUsageErrors(arguments: [String], message: String) async throws {
        let run = try await CLI.run(arguments, stdin: "")
        #expect(run.status == 2)
        #expect(run.stderr.contains(message), "\(run.stderr)")
    }

    @Test func pruneKeepsTheNewestWithinTheBound() async throws {
        let dir = try CLI.temporaryDirectory()
        let cache = dir.appendingPathComponent("answers.db").path
        let long = String(repeating: "p", count: 1000)
        let input = (0..<1500).map { #"{"id":"c\#($0)","model":"m","prompt":"\#(long) \#($0)"}"# }.joined(separator: "\n")
        #expect(try await CLI.run(["--response-cache", cache, "--quiet", "--concurrency", "1"], stdin: input).status == 0)
        let before = try await Self.stats(cache)
        #expect((before["bytes"] as? Int ?? 0) > 1 << 20)
        let prune = try await CLI.run(["cache", "prune", cache, "--max-mb", "1"])
        #expect(prune.status == 0, "\(prune.stderr)")
        let after = (try? JSONSerialization.jsonObject(with: Data(prune.stdout.utf8)) as? [String: Any]) ?? [:]
        #expect((after["bytes"] as? Int ?? .max) <= 1 << 20)
        #expect((after["removed"] as? Int ?? 0) > 0 && (after["entries"] as? Int ?? 0) == (before["entries"] as? Int ?? 0) - (after["removed"] as? Int ?? 0))
        #expect(try await Self.stats(cache)["entries"] as? Int == after["entries"] as? Int)
        // The bound while running: a run with --response-cache-max-mb 1 leaves at most 1 MiB.
        let bounded = dir.appendingPathComponent("bounded.db").path
        #expect(try await CLI.run(["--response-cache", bounded, "--response-cache-max-mb", "1", "--quiet"], stdin: input).status == 0)
        let small = try await Self.stats(bounded)
        #expect((small["bytes"] as? Int ?? .max) <= 1 << 20 && (small["entries"] as? Int ?? 0) > 0)
    }

    /// Starts the binary on `input` (a file) writing to a pipe.
    static func start(_ arguments: [String], input: URL) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = arguments
        process.standardInput = try FileHandle(forReadingFrom: input)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        return (process, output)
    }

    @Test func severalRunsShareOneFileAtOnce() async throws {
        let dir = try CLI.temporaryDirectory(files: ["in.jsonl": Self.commands(3000)])
        let cache = dir.appendingPathComponent("answers.db").path
        let input = dir.appendingPathComponent("in.jsonl")
        let runs = try (0..<3).map { _ in try Self.start(["--response-cache", cache, "--quiet", "--mock-latency-ms", "1", "--concurrency", "32"], input: input) }
        let outputs = try await onOwnThread {
            runs.map { run in
                let data = run.1.fileHandleForReading.readDataToEndOfFile()
                run.0.waitUntilExit()
                return (run.0.terminationStatus, String(decoding: data, as: UTF8.self))
            }
        }
        for (status, stdout) in outputs {
            #expect(status == 0)
            let statuses = stdout.split(separator: "\n").compactMap { line -> String? in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).flatMap(Self.status)
            }
            #expect(statuses.count == 3000 && statuses.allSatisfy { ["hit", "stored"].contains($0) })
        }
        #expect(try await Self.stats(cache)["entries"] as? Int == 3000)
    }

    @Test func aRunKilledMidWriteLeavesAFileThatOpensAndAnswers() async throws {
        let dir = try CLI.temporaryDirectory(files: ["in.jsonl": Self.commands(20_000)])
        let cache = dir.appendingPathComponent("answers.db").path
        let input = dir.appendingPathComponent("in.jsonl")
        let (process, output) = try Self.start(["--response-cache", cache, "--quiet", "--mock-latency-ms", "2", "--concurrency", "64"], input: input)
        // Killed (SIGKILL) once 3,000 results are out: answers are being written all along.
        let seen = try await onOwnThread { () -> Int in
            var lines = 0
            while lines < 3000 {
                let data = output.fileHandleForReading.availableData
                if data.isEmpty { break }
                lines += data.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return lines
        }
        #expect(seen >= 3000, "the run ended before it was killed")
        #expect(process.terminationReason == .uncaughtSignal)
        let stats = try await Self.stats(cache)
        let kept = stats["entries"] as? Int ?? 0
        #expect(kept > 0 && kept < 20_000)
        // The same input again: what was kept is answered, the rest is asked; every command succeeds.
        let again = try await CLI.run(["--response-cache", cache, "--quiet"], stdin: try String(contentsOf: input, encoding: .utf8))
        #expect(again.status == 0)
        let statuses = again.records.compactMap(Self.status)
        #expect(statuses.count == 20_000)
        #expect(statuses.filter { $0 == "hit" }.count == kept)
        #expect(try await Self.stats(cache)["entries"] as? Int == 20_000)
    }

    /// `--stats`, `--stats-json` and `pipeline report` count what the cache did: stored on the
    /// cold run, hits (requests saved) on the warm one, each counted as the results' statuses.
    @Test func statsAndTheReportCountTheCachesWork() async throws {
        let dir = try CLI.temporaryDirectory()
        let cache = dir.appendingPathComponent("answers.db").path
        let input = Self.commands(6)
        func run(_ name: String) async throws -> (run: CLI.Run, stats: [String: Any]) {
            let statsPath = dir.appendingPathComponent("\(name).json").path
            let run = try await CLI.run(["--response-cache", cache, "--quiet", "--stats", "--stats-json", statsPath], stdin: input)
            #expect(run.status == 0, "\(run.stderr)")
            let text = try String(contentsOfFile: statsPath, encoding: .utf8)
            let (valid, report) = try await CLI.validate(text, against: "stats.schema.json")
            #expect(valid, "\(report)")
            return (run, (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:])
        }
        let cold = try await run("cold")
        #expect(cold.stats["response_cache"] as? [String: Int] == ["hits": 0, "misses": 0, "stored": 6, "requests_saved": 0])
        #expect(cold.run.stderr.contains("response cache: 0 hits, 0 misses, 6 stored; 0 requests saved"), "\(cold.run.stderr)")
        let warm = try await run("warm")
        #expect(warm.stats["response_cache"] as? [String: Int] == ["hits": 6, "misses": 0, "stored": 0, "requests_saved": 6])
        #expect(warm.run.stderr.contains("response cache: 6 hits, 0 misses, 0 stored; 6 requests saved"), "\(warm.run.stderr)")
        // Without a cache: no such figures.
        let none = try await CLI.run(["--quiet", "--stats"], stdin: input)
        #expect(!none.stderr.contains("response cache:"), "\(none.stderr)")

        // The report reads the same from the results: both runs together.
        let results = dir.appendingPathComponent("results.jsonl").path
        try (cold.run.stdout + warm.run.stdout).write(toFile: results, atomically: true, encoding: .utf8)
        let reportStats = dir.appendingPathComponent("report.json").path
        let report = try await CLI.run(["report", results, "--stats-json", reportStats])
        #expect(report.status == 0, "\(report.stderr)")
        #expect(report.stdout.contains("<td class=\"t\">response-cache hits (answered with no request)</td><td>6</td>"), "\(report.stdout)")
        #expect(report.stdout.contains("<td class=\"t\">response-cache answers stored</td><td>6</td>"))
        #expect(report.stdout.contains("<td class=\"t\">requests saved by the response cache</td><td>6</td>"))
        let fromResults = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportStats))) as? [String: Any]) ?? [:]
        #expect(fromResults["response_cache"] as? [String: Int] == ["hits": 6, "misses": 0, "stored": 6, "requests_saved": 6])
    }
}
