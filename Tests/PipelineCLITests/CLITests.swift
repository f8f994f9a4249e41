import Foundation
import Testing

@Suite struct CLIInputTests {
    @Test func theShorthandOneLinerWorks() async throws {
        let run = try await CLI.run([], stdin: #"{"model":"mock","prompt":"Hello"}"# + "\n")
        #expect(run.status == 0)
        #expect(run.lines.count == 1)
        let record = run.records[0]
        #expect(record["status"] as? String == "succeeded")
        #expect(record["id"] as? String == "cmd-1")
        #expect(record[path: "responses.0.text"] as? String == "echo: Hello")
        #expect(record[path: "usage.total_tokens"] as? Int == 5)
        #expect(run.stderr.contains("1 succeeded, 0 failed"), "summary on stderr")
    }

    @Test func jsonLinesPrettyAndArrayInputsGiveTheSameResults() async throws {
        let jsonl = #"{"id":"a","model":"m","prompt":"one"}"# + "\n" + #"{"id":"b","model":"m","prompts":["two","three"]}"# + "\n"
        let pretty = """
        {
          "id": "a",
          "model": "m",
          "prompt": "one"
        }
        {"id": "b",
         "model": "m", "prompts": ["two", "three"]}{"id":"c","model":"m","prompt":"four"}
        """
        let array = #"[{"id":"a","model":"m","prompt":"one"},"# + "\n" + #"{"id":"b","model":"m","prompts":["two","three"]}]"#
        let texts = { (run: CLI.Run) in run.records.map { ($0["responses"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String } } }
        let a = try await CLI.run(["--quiet"], stdin: jsonl)
        let b = try await CLI.run(["--quiet"], stdin: pretty)
        let c = try await CLI.run(["--quiet"], stdin: array)
        #expect(texts(a) == [["echo: one"], ["echo: two", "echo: three"]])
        #expect(texts(b) == [["echo: one"], ["echo: two", "echo: three"], ["echo: four"]])
        #expect(texts(c) == texts(a))
        #expect([a, b, c].allSatisfy { $0.status == 0 })
    }

    @Test func theFullWireFormatExampleRuns() async throws {
        let dir = try CLI.temporaryDirectory(files: ["papers/42.pdf": "%PDF-1.4 fake"])
        let command = #"""
        {"id": "paper-42",
         "plan": {"calls": [{"model": "gemini-2.5-flash", "parts": [{"type": "text", "text": "List the three main claims."}],
                             "config": {"system_instruction": "Be terse.", "temperature": 0.2, "max_tokens": 512}}],
                  "shared_parts": [{"type": "file_placeholder", "path": "papers/42.pdf", "mime_type": "application/pdf"}],
                  "fallback_call": {"model": "gemini-2.5-flash-lite", "parts": [{"type": "text", "text": "List the three main claims."}]},
                  "upload_tasks": [], "cache": {"ttl_seconds": 3600},
                  "rate_constraint": {"requests_per_minute": 60, "tokens_per_minute": 1000000}},
         "token_estimate": {"min_tokens": 200, "expected_tokens": 270, "max_tokens": 400, "confidence": 0.8},
         "per_call_estimates": [], "metadata": {"batch": "nov-21"}}
        """#
        let run = try await CLI.run(["--quiet"], stdin: command, currentDirectory: dir)
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        let r = run.records[0]
        #expect(r["id"] as? String == "paper-42")
        #expect(r[path: "telemetry.uploads.performed"] as? Int == 1)
        #expect(r[path: "telemetry.cache.created"] as? Bool == true)
        #expect((r[path: "telemetry.cache.id"] as? String)?.hasPrefix("mock-cache-") == true)
        // 258 (the uploaded file, served from the cache) + 7 ("List the three main claims.") prompt tokens.
        #expect(r[path: "usage.cached_tokens"] as? Int == 258)
        #expect(r[path: "usage.prompt_tokens"] as? Int == 265)
        #expect(r[path: "telemetry.token_validation.in_range"] as? Bool == true)
        #expect(r[path: "metadata.batch"] as? String == "nov-21")
    }

    @Test func aStreamMixingValidInvalidAndGarbageYieldsOneLineEach() async throws {
        let input = """
        {"id":"ok-1","model":"m","prompt":"a"}
        this is not json
        {"id":"bad","plan":{"calls":[{"model":"m","parts":[{"type":"txt","text":"a"}]}]},"metadata":{"keep":true}}
        {"id":"broken", "model": "m", "prompt": }
        {"id":"ok-2","model":"m","prompt":"b"}
        """
        let run = try await CLI.run([], stdin: input)
        #expect(run.status == 1)
        let records = run.records
        #expect(records.count == 5)
        #expect(records.map { $0["index"] as? Int } == [0, 1, 2, 3, 4])
        #expect(records.map { $0["status"] as? String } == ["succeeded", "failed", "failed", "failed", "succeeded"])
        #expect(records[1][path: "error.kind"] as? String == "invalid_command")
        #expect((records[1][path: "error.message"] as? String)?.contains("line 2") == true)
        #expect(records[2]["id"] as? String == "bad")
        #expect(records[2][path: "error.path"] as? String == "plan.calls[0].parts[0].type")
        #expect(records[2][path: "metadata.keep"] as? Bool == true)
        #expect((records[3][path: "error.message"] as? String)?.contains("byte offset") == true)
        #expect(records[4]["id"] as? String == "ok-2")
        #expect(run.stderr.contains("2 succeeded, 3 failed"))
    }

    @Test func unknownKeysAreErrorsThatNameTheKey() async throws {
        let run = try await CLI.run(["--quiet"], stdin: #"{"model":"m","prompt":"a","temprature":0.5}"#)
        #expect(run.status == 1)
        #expect((run.records[0][path: "error.message"] as? String)?.contains("unknown key 'temprature'") == true)
        #expect(run.records[0][path: "error.path"] as? String == "temprature")
    }
}

@Suite struct CLIExecutionTests {
    @Test func fallbackRescuesAFailingModel() async throws {
        let run = try await CLI.run(["--quiet", "--mock-fail-model", "big"], stdin: #"{"model":"big","prompt":"q","fallback_model":"small"}"#)
        #expect(run.status == 0)
        let r = run.records[0]
        #expect(r[path: "telemetry.used_fallback"] as? Bool == true)
        #expect(r[path: "telemetry.primary_error.kind"] as? String == "provider_error")
        #expect(r[path: "responses.0.model"] as? String == "small")

        let both = try await CLI.run(["--quiet", "--mock-fail-model=big", "--mock-fail-model=small"], stdin: #"{"model":"big","prompt":"q","fallback_model":"small"}"#)
        #expect(both.status == 1)
        #expect(both.records[0][path: "error.details.primary_error.kind"] as? String == "provider_error")
    }

    @Test func aRequiredUploadOnAProviderWithoutUploadsIsCapabilityMissing() async throws {
        let dir = try CLI.temporaryDirectory(files: ["a.pdf": "x"])
        let command = #"{"plan":{"calls":[{"model":"m","parts":[{"type":"file_placeholder","path":"a.pdf"},{"type":"text","text":"q"}]}],"upload_tasks":[{"part_index":0,"required":true}]}}"#
        let run = try await CLI.run(["--quiet", "--mock-capabilities", "generation,caching"], stdin: command, currentDirectory: dir)
        #expect(run.status == 1)
        #expect(run.records[0][path: "error.kind"] as? String == "capability_missing")
        #expect(run.records[0][path: "error.path"] as? String == "plan.calls[0].parts[0]")
        // The same command with the upload optional runs, leaving the placeholder.
        let optional = command.replacingOccurrences(of: "\"required\":true", with: "\"required\":false")
        let ok = try await CLI.run(["--quiet", "--mock-capabilities", "generation"], stdin: optional, currentDirectory: dir)
        #expect(ok.status == 0)
        #expect(ok.records[0][path: "telemetry.uploads.skipped"] as? Int == 1)
    }

    @Test func commandsOfOneRunShareOneCache() async throws {
        let dir = try CLI.temporaryDirectory(files: ["doc.txt": String(repeating: "shared context ", count: 50)])
        let input = (1...5).map { #"{"id":"q\#($0)","model":"m","prompt":"question \#($0)","files":["doc.txt"],"cache":{}}"# }.joined(separator: "\n")
        let run = try await CLI.run(["--quiet"], stdin: input, currentDirectory: dir)
        #expect(run.status == 0)
        let caches = run.records.compactMap { $0[path: "telemetry.cache"] as? [String: Any] }
        #expect(caches.count == 5)
        #expect(caches.filter { $0["created"] as? Bool == true }.count == 1)
        #expect(caches.filter { $0["reused"] as? Bool == true }.count == 4)
        #expect(Set(caches.compactMap { $0["id"] as? String }).count == 1)
        let uploads = run.records.compactMap { $0[path: "telemetry.uploads.performed"] as? Int }
        #expect(uploads.reduce(0, +) == 1, "the shared file was uploaded once for the whole run")
    }

    @Test func orderedOutputFollowsInputAndUnorderedFollowsCompletion() async throws {
        // Valid commands take 300 ms; invalid ones fail at once.
        let input = [#"{"id":"slow-1","model":"m","prompt":"a"}"#, #"{"id":"fast-1","plan":{}}"#, #"{"id":"slow-2","model":"m","prompt":"b"}"#, #"{"id":"fast-2","plan":{}}"#].joined(separator: "\n")
        let ordered = try await CLI.run(["--quiet", "--mock-latency-ms", "300"], stdin: input)
        #expect(ordered.records.map { $0["id"] as? String } == ["slow-1", "fast-1", "slow-2", "fast-2"])
        let unordered = try await CLI.run(["--quiet", "--unordered", "--mock-latency-ms", "300"], stdin: input)
        let ids = unordered.records.compactMap { $0["id"] as? String }
        #expect(Set(ids.prefix(2)) == ["fast-1", "fast-2"])
        #expect(Set(ids.suffix(2)) == ["slow-1", "slow-2"])
        #expect(unordered.records.compactMap { $0["index"] as? Int }.sorted() == [0, 1, 2, 3])
    }

    @Test func resumeSkipsWhatAlreadySucceededAndCompletesTheRun() async throws {
        let dir = try CLI.temporaryDirectory()
        let input = (1...6).map { i in #"{"id":"c\#(i)","model":"\#(i % 2 == 0 ? "flaky" : "ok")","prompt":"p\#(i)"}"# }.joined(separator: "\n")
        let first = try await CLI.run(["--quiet", "--mock-fail-model", "flaky"], stdin: input)
        #expect(first.status == 1)
        let results = dir.appendingPathComponent("out.jsonl")
        try first.stdout.write(to: results, atomically: true, encoding: .utf8)

        let second = try await CLI.run(["--quiet", "--resume", results.path], stdin: input)
        #expect(second.status == 0)
        #expect(second.records.compactMap { $0["id"] as? String } == ["c2", "c4", "c6"])
        let all = first.records + second.records
        let succeeded = Set(all.filter { $0["status"] as? String == "succeeded" }.compactMap { $0["id"] as? String })
        #expect(succeeded == Set((1...6).map { "c\($0)" }))

        let missing = try await CLI.run(["--resume", dir.appendingPathComponent("nope.jsonl").path], stdin: input)
        #expect(missing.status == 2)
        #expect(missing.stdout.isEmpty)
    }

    @Test func filesRootRejectsEscapesBeforeReadingAnything() async throws {
        let root = try CLI.temporaryDirectory(files: ["inside.txt": "ok"])
        let outside = try CLI.temporaryDirectory(files: ["secret.txt": "s"])
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("link.txt").path, withDestinationPath: outside.appendingPathComponent("secret.txt").path)
        let input = [
            #"{"id":"in","model":"m","prompt":"q","files":["inside.txt"]}"#,
            #"{"id":"dotdot","model":"m","prompt":"q","files":["../x.txt"]}"#,
            #"{"id":"abs","model":"m","prompt":"q","files":["\#(outside.appendingPathComponent("secret.txt").path)"]}"#,
            #"{"id":"link","model":"m","prompt":"q","files":["link.txt"]}"#,
        ].joined(separator: "\n")
        let run = try await CLI.run(["--quiet", "--files-root", root.path], stdin: input)
        #expect(run.status == 1)
        #expect(run.records.map { $0["status"] as? String } == ["succeeded", "failed", "failed", "failed"])
        for record in run.records.dropFirst() {
            #expect(record[path: "error.kind"] as? String == "invalid_command")
            #expect((record[path: "error.message"] as? String)?.contains("leaves the files root") == true)
            #expect(record[path: "error.path"] as? String == "plan.shared_parts[0].path")
        }
    }
}

@Suite struct CLIContractTests {
    @Test func usageErrorsExitTwoWithAMessageOnStderrAndNothingOnStdout() async throws {
        for arguments in [["--bogus"], ["--concurrency", "0"], ["--concurrency"], ["--provider", "nope"], ["frobnicate"], ["--quiet=yes"]] {
            let run = try await CLI.run(arguments, stdin: #"{"model":"m","prompt":"x"}"#)
            #expect(run.status == 2, "\(arguments)")
            #expect(run.stdout.isEmpty)
            #expect(run.stderr.hasPrefix("Error: "))
            #expect(run.stderr.contains("See 'pipeline --help'."))
        }
        let typo = try await CLI.run(["--unorderd"])
        #expect(typo.stderr.contains("did you mean '--unordered'?"))
    }

    @Test func unreadableStdinIsAUsageError() async throws {
        let process = Process()
        process.executableURL = CLI.binary
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/"))  // a directory: read(2) fails
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let (out, err) = try await onOwnThread {
            let out = output.fileHandleForReading.readDataToEndOfFile()
            let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (out, err)
        }
        #expect(process.terminationStatus == 2)
        #expect(out.isEmpty)
        #expect(err.contains("cannot read stdin"))
    }

    @Test func emptyInputSucceedsWithNothingToDo() async throws {
        let run = try await CLI.run([], stdin: "")
        #expect(run.status == 0)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("0 succeeded, 0 failed"))
    }

    @Test func helpAndVersionGoToStdout() async throws {
        let help = try await CLI.run(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("--concurrency N"))
        #expect(help.stdout.contains("default: 64"))
        #expect(help.stdout.contains(#"echo '{"model":"mock","prompt":"Hello"}' | pipeline"#))
        #expect(help.stderr.isEmpty)
        let version = try await CLI.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.hasPrefix("pipeline "))
    }

    @Test func quietMeansNothingOnStderr() async throws {
        let run = try await CLI.run(["--quiet"], stdin: #"{"model":"m","prompt":"x"}"#)
        #expect(run.stderr.isEmpty)
    }

    @Test func validateExecutesNothingAndReportsEachCommand() async throws {
        let run = try await CLI.run(["validate", "--quiet"], stdin: #"{"model":"m","prompt":"x"}"# + "\n" + #"{"plan":{"calls":[]}}"#)
        #expect(run.status == 1)
        #expect(run.records.map { $0["status"] as? String } == ["valid", "failed"])
        #expect(run.records[0]["responses"] == nil)
    }

    @Test func capabilitiesPrintsTheProbedSet() async throws {
        let all = try await CLI.run(["capabilities"])
        #expect(all.status == 0)
        #expect(all.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == #"{"provider":"mock","capabilities":["generation","uploads","caching","streaming","token_counting","batch"]}"#)
        let some = try await CLI.run(["capabilities", "--mock-capabilities", "streaming"])
        #expect(some.stdout.contains(#"["generation","streaming"]"#))
        let bad = try await CLI.run(["capabilities", "--mock-capabilities", "telepathy"])
        #expect(bad.status == 2)
    }

    @Test(arguments: ["SIGINT", "SIGTERM", "SIGHUP"])
    func interruptedRunsWriteWhatFinishedAndExit130(signal: String) async throws {
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = ["--quiet", "--unordered", "--mock-latency-ms", "5000"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = Pipe()
        try process.run()
        // An invalid command answers at once: once its line is out, the run loop (and its signal handling) is live.
        try? input.fileHandleForWriting.write(contentsOf: Data((#"{"id":"bad","plan":{}}"# + "\n" + #"{"id":"slow","model":"m","prompt":"x"}"# + "\n").utf8))
        let number = ["SIGINT": SIGINT, "SIGTERM": SIGTERM, "SIGHUP": SIGHUP][signal]!
        let received = try await onOwnThread {
            var received = Data()
            while !received.contains(UInt8(ascii: "\n")) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                received.append(chunk)
            }
            kill(process.processIdentifier, number)
            received.append(output.fileHandleForReading.readDataToEndOfFile())
            process.waitUntilExit()
            return received
        }
        #expect(process.terminationStatus == 130)
        let lines = String(decoding: received, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.contains(#""id":"bad""#) == true)
        // The in-flight command was cancelled after the one-second grace and its result still written.
        #expect(lines.last?.contains(#""kind":"cancelled""#) == true)
        try? input.fileHandleForWriting.close()
    }

    @Test func outputMatchesTheResultSchema() async throws {
        let dir = try CLI.temporaryDirectory(files: ["doc.txt": "document"])
        let input = """
        {"model":"m","prompt":"plain"}
        {"model":"m","prompts":["a","b"],"files":["doc.txt"],"cache":{"ttl_seconds":60},"token_estimate":{"min_tokens":1,"expected_tokens":2,"max_tokens":3}}
        {"model":"down","prompt":"q","fallback_model":"up"}
        {"model":"down","prompt":"q"}
        {"plan":{"calls":[{"model":"up","parts":[{"type":"text","text":"a"}]},{"model":"down","parts":[{"type":"text","text":"b"}]}]}}
        not json
        {"plan":{"calls":[]}}
        """
        let run = try await CLI.run(["--quiet", "--mock-fail-model", "down"], stdin: input, currentDirectory: dir)
        #expect(run.lines.count == 7)
        let (valid, report) = try await CLI.validate(run.stdout, against: "result.schema.json")
        #expect(valid, "\(report)")
        let validated = try await CLI.run(["validate", "--quiet"], stdin: input)
        let (validOutput, validReport) = try await CLI.validate(validated.stdout, against: "result.schema.json")
        #expect(validOutput, "\(validReport)")
    }

    @Test func theExampleCommandsMatchTheCommandSchemaAndRun() async throws {
        let examples = try String(contentsOf: CLI.packageRoot.appendingPathComponent("examples/commands.jsonl"), encoding: .utf8)
        let (valid, report) = try await CLI.validate(examples, against: "command.schema.json")
        #expect(valid, "\(report)")
        let run = try await CLI.run(["--quiet"], stdin: examples, currentDirectory: CLI.packageRoot.appendingPathComponent("examples"))
        #expect(run.status == 0, "\(run.stdout)")
        #expect(run.lines.count == examples.split(separator: "\n").count)
    }
}

@Suite struct CLITerminalTests {
    /// Runs the CLI with stderr on a pseudo-terminal (util-linux `script`), stdin and stdout on files.
    @Test func aTerminalGetsALiveProgressLineAndStdoutStaysPureJSON() async throws {
        let dir = try CLI.temporaryDirectory(files: ["in.jsonl": String(repeating: #"{"model":"m","prompt":"x"}"# + "\n", count: 200)])
        let output = dir.appendingPathComponent("out.jsonl"), log = dir.appendingPathComponent("tty.log")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qec", "'\(CLI.binary.path)' --mock-latency-ms 100 --concurrency 32 < '\(dir.path)/in.jsonl' > '\(output.path)'", log.path]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        try await onOwnThread { process.waitUntilExit() }
        #expect(process.terminationStatus == 0)
        let terminal = try String(contentsOf: log, encoding: .utf8)
        #expect(terminal.contains("in flight"), "a progress line was drawn")
        #expect(terminal.contains("\u{1B}[K"), "the line is redrawn in place")
        #expect(terminal.contains("200 succeeded, 0 failed"))
        let lines = try String(contentsOf: output, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 200)
        #expect(lines.allSatisfy { $0.hasPrefix(#"{"id":"cmd-"#) })
    }
}
