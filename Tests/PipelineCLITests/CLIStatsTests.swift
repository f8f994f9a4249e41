import Foundation
import Testing

/// `--stats` and `--stats-json` through the binary: the figures add up to the result lines the
/// same run wrote.
@Suite struct CLIStatsTests {
    @Test func statsJSONAgreesWithTheResultsOfTheSameRun() async throws {
        let dir = try CLI.temporaryDirectory()
        let stats = dir.appendingPathComponent("stats.json").path
        // One call per command, so each record is exactly one call.
        let input = (0..<120).map { #"{"id":"c\#($0)","model":"\#($0 % 3 == 0 ? "beta" : "alpha")","prompt":"question number \#($0)"}"# }.joined(separator: "\n")
        let run = try await CLI.run(
            ["--stats", "--stats-json", stats, "--mock-faults", "retryable=0.3,fatal=0.1,seed=7", "--max-attempts", "2", "--quiet"], stdin: input)
        #expect(run.status == 1, "some commands fail: \(run.stderr)")
        try #require(run.records.count == 120)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [String: Any])
        let models = try #require(object["models"] as? [[String: Any]])
        #expect(models.map { $0["model"] as? String } == ["alpha", "beta"])
        for row in models {
            let model = row["model"] as? String
            let records = run.records.filter { ($0[path: "responses.0.model"] as? String ?? ($0["id"] as? String).map { Int($0.dropFirst())! % 3 == 0 ? "beta" : "alpha" }) == model }
            let succeeded = records.filter { $0["status"] as? String == "succeeded" }
            #expect(row["calls"] as? Int == records.count, "\(model ?? "?")")
            #expect(row["succeeded"] as? Int == succeeded.count)
            #expect(row["failed"] as? Int == records.count - succeeded.count)
            var kinds: [String: Int] = [:]
            for record in records where record["status"] as? String == "failed" { kinds[record[path: "error.kind"] as? String ?? "?", default: 0] += 1 }
            #expect((row["failures"] as? [String: Int]) == kinds)
            #expect(row["retries"] as? Int == records.reduce(0) { $0 + ($1[path: "telemetry.retries"] as? Int ?? 0) })
            #expect(row[path: "tokens.input"] as? Int == succeeded.reduce(0) { $0 + ($1[path: "usage.prompt_tokens"] as? Int ?? 0) })
            #expect(row[path: "tokens.output"] as? Int == succeeded.reduce(0) { $0 + ($1[path: "usage.completion_tokens"] as? Int ?? 0) })
            let p50 = row[path: "latency_ms.p50"] as? Double ?? -1, p99 = row[path: "latency_ms.p99"] as? Double ?? -1
            #expect(p50 >= 0 && p99 >= p50)
        }
        #expect(models.contains { ($0["failures"] as? [String: Int])?.isEmpty == false }, "the faults show up as failures")
        let (valid, report) = try await CLI.validate(try String(contentsOfFile: stats, encoding: .utf8), against: "stats.schema.json")
        #expect(valid, "\(report)")
        // The table is on stderr, not stdout, one line per model under a header.
        let table = run.stderr.split(separator: "\n").filter { $0.hasPrefix("provider ") || $0.hasPrefix("mock ") }
        #expect(table.count == 3 && table[0].contains("p99 ms"), "\(run.stderr)")
        #expect(!run.stdout.contains("p99 ms"))
    }

    /// Model names come from input: 1,000 rows at most, the rest in one `others` row. The table
    /// (over 64 KB of stderr) comes after the run's summary line.
    @Test func rowsAreCappedAndTheTableFollowsTheSummary() async throws {
        let dir = try CLI.temporaryDirectory()
        let stats = dir.appendingPathComponent("stats.json").path
        let input = (0..<1_050).map { #"{"id":"c\#($0)","model":"model-with-a-rather-long-name-number-\#($0)","prompt":"q"}"# }.joined(separator: "\n")
        let run = try await CLI.run(["--stats", "--stats-json", stats], stdin: input)
        #expect(run.status == 0, "\(run.stderr.suffix(500))")
        #expect(run.records.count == 1_050)
        #expect(run.stderr.utf8.count > 65_536, "enough to fill a pipe: the harness must drain stderr while it reads stdout")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [String: Any])
        let models = try #require(object["models"] as? [[String: Any]])
        #expect(models.count == 1_001)
        #expect(models.dropLast().allSatisfy { $0["others"] == nil })
        let others = try #require(models.last)
        #expect(others["others"] as? Bool == true && others["model"] as? String == "*")
        #expect(others["calls"] as? Int == 50)
        #expect(models.reduce(0) { $0 + ($1["calls"] as? Int ?? 0) } == 1_050)
        let (valid, report) = try await CLI.validate(try String(contentsOfFile: stats, encoding: .utf8), against: "stats.schema.json")
        #expect(valid, "\(report)")
        let lines = run.stderr.split(separator: "\n")
        let header = try #require(lines.firstIndex { $0.hasPrefix("provider ") })
        let summary = try #require(lines.firstIndex { $0.hasPrefix("pipeline: ") && $0.contains("succeeded") })
        #expect(summary < header, "the summary line comes before the table")
        #expect(lines.last?.hasPrefix("(others)") == true)
    }

    /// Model names come from input: in the table each is one cell on one line, escaped, so a
    /// name cannot forge a row or reach the terminal raw.
    @Test func aModelNameCannotForgeATableLine() async throws {
        let input = #"{"id":"a","model":"evil\nmock  forged  999\u001b[2J","prompt":"q"}"#
        let run = try await CLI.run(["--stats", "--quiet"], stdin: input)
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 2, "a header and one row: \(run.stderr)")
        #expect(lines.last?.hasPrefix(#"mock      evil\nmock  forged  999\u{1b}[2J"#) == true, "\(run.stderr)")
        #expect(!run.stderr.unicodeScalars.contains("\u{1b}"))
    }

    @Test func withoutStatsNothingIsCollectedOrPrinted() async throws {
        let run = try await CLI.run(["--quiet"], stdin: #"{"model":"m","prompt":"hi"}"#)
        #expect(run.status == 0)
        #expect(run.stderr.isEmpty)
    }

    @Test func anUnwritableStatsFileIsExit3() async throws {
        let run = try await CLI.run(["--stats-json", "/no/such/dir/stats.json", "--quiet"], stdin: #"{"model":"m","prompt":"hi"}"#)
        #expect(run.status == 3)
        #expect(run.stderr.contains("cannot write --stats-json"), "\(run.stderr)")
        #expect(run.records.count == 1, "the results were written before")
    }
}

/// `--hook-exec`: a hook run by another program (Tests/Tools/example_hook.py), through the binary.
@Suite struct CLIExecHookTests {
    @Test func anExternalHookEnrichesRejectsAndFailsWithoutChangingResults() async throws {
        let dir = try CLI.temporaryDirectory()
        let log = dir.appendingPathComponent("hook.log").path
        let hook = TestPaths.packageRoot.appendingPathComponent("Tests/Tools/example_hook.py").path
        var environment = ProcessInfo.processInfo.environment
        environment["HOOK_LOG"] = log
        let input = [
            #"{"id":"c1","model":"m","prompt":"hello"}"#,
            #"{"id":"c2","model":"m","prompt":"a forbidden question"}"#,
            #"{"id":"c3","model":"m","prompt":"world"}"#,
        ].joined(separator: "\n")
        let run = try await CLI.run(["--hook-exec", hook, "--concurrency", "1"], stdin: input, environment: environment)
        #expect(run.status == 1, "\(run.stderr)")
        try #require(run.records.count == 3)
        #expect(run.records[0][path: "metadata.team"] as? String == "search", "enriched by the hook")
        #expect(run.records[0][path: "responses.0.text"] as? String == "echo: hello")
        #expect(run.records[1][path: "error.kind"] as? String == "invalid_command")
        #expect(run.records[1][path: "error.message"] as? String == "rejected by hook 'exec:example_hook.py': the prompt uses a forbidden word")
        #expect(run.records[2]["status"] as? String == "succeeded", "a hook failing after the command changes no result")
        #expect(run.records[2][path: "responses.0.text"] as? String == "echo: world")
        let failures = run.records[2][path: "telemetry.hook_failures"] as? [[String: Any]]
        #expect(failures?.count == 1 && failures?.first?["hook"] as? String == "exec:example_hook.py" && failures?.first?["phase"] as? String == "after_success")
        #expect(failures?.first?["message"] as? String == "audit store unreachable")
        #expect(run.records[0][path: "telemetry.hook_failures"] == nil, "written only when a hook failed")
        #expect(run.stderr.contains("pipeline: hook 'exec:example_hook.py' failed after command 'c3' (after_success): audit store unreachable"), "\(run.stderr)")
        let (valid, report) = try await CLI.validate(run.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
        // The hook saw each command before and after, except the rejected one after.
        let seen = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map { line -> String in
            let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
            return "\(object["hook"] as? String ?? "?") \(object["id"] as? String ?? "?")"
        }
        #expect(seen == ["before c1", "after c1", "before c2", "before c3", "after c3"])
    }

    /// The hook program never sees a provider key, and its text reaches results cut to
    /// `HookFailure.messageLimit` and stderr on one line, control characters escaped.
    @Test func aHookProgramGetsNoKeysAndItsTextIsBounded() async throws {
        let script = #"""
            #!/usr/bin/env python3
            import json, os, sys
            for line in sys.stdin:
                q = json.loads(line)
                if q["hook"] == "before" and q["id"] == "a":
                    keys = [os.environ.get(v, "-") for v in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MY_KEY", "HARMLESS")]
                    answer = {"reject": "seen: " + " ".join(keys)}
                elif q["hook"] == "after":
                    answer = {"error": "line one\nforged line\u001b[31m" + "x" * 5000}
                else:
                    answer = {}
                answer.update(index=q["index"], hook=q["hook"])
                sys.stdout.write(json.dumps(answer) + "\n"); sys.stdout.flush()
            """#
        let dir = try CLI.temporaryDirectory(files: ["keys.py": script])
        let hook = dir.appendingPathComponent("keys.py").path
        chmod(hook, 0o755)
        var environment = ProcessInfo.processInfo.environment
        environment["OPENAI_API_KEY"] = "sk-should-not-travel"
        environment["ANTHROPIC_API_KEY"] = "sk-ant-nor-this"
        environment["MY_KEY"] = "named-by-api-key-env"
        environment["HARMLESS"] = "visible"
        let input = #"{"id":"a","model":"m","prompt":"hi"}"# + "\n" + #"{"id":"b","model":"m","prompt":"hi"}"#
        let run = try await CLI.run(["--hook-exec", hook, "--api-key-env", "MY_KEY", "--concurrency", "1"], stdin: input, environment: environment)
        #expect(run.status == 1, "\(run.stderr)")
        try #require(run.records.count == 2)
        #expect(run.records[0][path: "error.message"] as? String == "rejected by hook 'exec:keys.py': seen: - - - visible")
        let message = try #require((run.records[1][path: "telemetry.hook_failures"] as? [[String: Any]])?.first?["message"] as? String)
        #expect(message.count == 1_001 && message.hasPrefix("line one\nforged line") && message.hasSuffix("x…"))
        let lines = run.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        let report = try #require(lines.first { $0.hasPrefix("pipeline: hook 'exec:keys.py' failed after command 'b'") })
        #expect(report.hasSuffix(#": line one\nforged line\u{1b}[31m"# + String(repeating: "x", count: 975) + "…"), "\(report.prefix(200))")
        #expect(!lines.contains { $0.hasPrefix("forged line") }, "no line of the hook's making")
        #expect(!run.stderr.unicodeScalars.contains("\u{1b}"))
    }

    /// A deployment's key (`api_key_env` in --deployments) is withheld from hook programs like
    /// the other keys, and redacted from what a hook says.
    @Test func aHookProgramGetsNoDeploymentKeyAndCannotEchoIt() async throws {
        let key = "sk-deploy-0123456789abcdef"
        let script = #"""
            #!/usr/bin/env python3
            import json, os, sys
            for line in sys.stdin:
                q = json.loads(line)
                answer = {"reject": "seen: " + os.environ.get("FIXA_DEPLOY_KEY", "-") + " said: \#(key)"} if q["hook"] == "before" else {}
                answer.update(index=q["index"], hook=q["hook"])
                sys.stdout.write(json.dumps(answer) + "\n"); sys.stdout.flush()
            """#
        let deployments = #"{"models": {"fast": [{"name": "d1", "provider": "mock", "model": "m", "api_key_env": "FIXA_DEPLOY_KEY"}]}}"#
        let dir = try CLI.temporaryDirectory(files: ["keys.py": script, "d.json": deployments])
        let hook = dir.appendingPathComponent("keys.py").path
        chmod(hook, 0o755)
        var environment = ProcessInfo.processInfo.environment
        environment["FIXA_DEPLOY_KEY"] = key
        let run = try await CLI.run(
            ["--hook-exec", hook, "--deployments", dir.appendingPathComponent("d.json").path, "--concurrency", "1", "--quiet"],
            stdin: #"{"id":"a","model":"fast","prompt":"hi"}"#, environment: environment)
        #expect(run.status == 1, "\(run.stderr)")
        try #require(run.records.count == 1, "\(run.stdout) \(run.stderr)")
        #expect(run.records[0][path: "error.message"] as? String == "rejected by hook 'exec:keys.py': seen: - said: <redacted>")
        #expect(!run.stdout.contains(key) && !run.stderr.contains(key))
    }

    /// A PostgreSQL sink's password (`PGPASSWORD`, and the variable `password_env` names) is
    /// withheld from hook programs like the providers' keys, and redacted from what a hook says.
    @Test func aHookProgramGetsNoDatabasePasswordAndCannotEchoIt() async throws {
        let pgPassword = "pg-password-0123456789", named = "named-password-9876543210"
        let script = #"""
            #!/usr/bin/env python3
            import json, os, sys
            for line in sys.stdin:
                q = json.loads(line)
                seen = os.environ.get("PGPASSWORD", "-") + " " + os.environ.get("RUNS_PW_30", "-")
                answer = {"reject": "seen: " + seen + " said: \#(pgPassword) \#(named)"} if q["hook"] == "before" else {}
                answer.update(index=q["index"], hook=q["hook"])
                sys.stdout.write(json.dumps(answer) + "\n"); sys.stdout.flush()
            """#
        let dir = try CLI.temporaryDirectory(files: ["keys.py": script])
        let hook = dir.appendingPathComponent("keys.py").path
        chmod(hook, 0o755)
        var environment = ProcessInfo.processInfo.environment
        environment["PGPASSWORD"] = pgPassword
        environment["RUNS_PW_30"] = named
        // Nothing listens on port 9: the sink reports the database down and gives up at the end.
        let run = try await CLI.run(
            ["--hook-exec", hook, "--sink", "postgres:postgresql://app@127.0.0.1:9/runs?table=results&password_env=RUNS_PW_30",
             "--sink-timeout", "1", "--concurrency", "1", "--quiet"],
            stdin: #"{"id":"a","model":"m","prompt":"hi"}"#, environment: environment)
        try #require(run.records.count == 1, "\(run.stdout) \(run.stderr)")
        #expect(run.records[0][path: "error.message"] as? String == "rejected by hook 'exec:keys.py': seen: - - said: <redacted> <redacted>")
        #expect(!(run.stdout + run.stderr).contains(pgPassword) && !(run.stdout + run.stderr).contains(named))
    }

    /// The deployments file is loaded once, before the hook programs start (its key variables
    /// are withheld from them): a file that does not load stops the run before any hook starts.
    @Test func aBadDeploymentsFileStopsTheRunBeforeAnyHookProgramStarts() async throws {
        let dir = try CLI.temporaryDirectory(files: [
            "start.sh": "#!/bin/sh\ntouch \"$(dirname \"$0\")/started\"\ncat >/dev/null\n",
            "d.json": #"{"models": {"fast": [{"name": "d1", "provider": "mock", "model": "m", "api_key_env": "FIXA_UNSET_KEY_25"}]}}"#,
        ])
        let hook = dir.appendingPathComponent("start.sh").path
        chmod(hook, 0o755)
        let run = try await CLI.run(
            ["--hook-exec", hook, "--deployments", dir.appendingPathComponent("d.json").path, "--quiet"], stdin: #"{"id":"a","model":"fast","prompt":"hi"}"#)
        #expect(run.status == 2, "\(run.stderr)")
        #expect(run.stderr.contains("option '--deployments ") && run.stderr.contains("FIXA_UNSET_KEY_25 is not set"), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("started").path), "no hook program was started")
    }

    @Test func aHookProgramThatCannotStartIsAUsageError() async throws {
        let run = try await CLI.run(["--hook-exec", "/no/such/program"], stdin: #"{"model":"m","prompt":"hi"}"#)
        #expect(run.status == 2)
        #expect(run.stderr.contains("option '--hook-exec': cannot start '/no/such/program'"), "\(run.stderr)")
    }

    @Test func aHookThatDiesRejectsTheCommandsBeforeAndNothingHangs() async throws {
        let dir = try CLI.temporaryDirectory(files: ["dies.sh": "#!/bin/sh\nexit 0\n"])
        let script = dir.appendingPathComponent("dies.sh").path
        chmod(script, 0o755)
        let run = try await CLI.run(["--hook-exec", script, "--quiet"], stdin: #"{"id":"a","model":"m","prompt":"hi"}"#)
        #expect(run.status == 1)
        #expect((run.records.first?[path: "error.message"] as? String)?.hasPrefix("rejected by hook 'exec:dies.sh': it ") == true, "\(run.stdout)")
    }
}
