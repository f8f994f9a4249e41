import Foundation
import Testing

/// `--hook-exec` against programs that misbehave: stop reading, answer late or twice, never
/// answer, ignore SIGTERM. Each run is bounded (`runProcess`'s timeout): a hang fails the test.
@Suite struct CLIHookProtocolTests {
    /// Runs the CLI with `input` on stdin through bash; stdout and stderr to files.
    func run(_ arguments: [String], input: String, in dir: URL, timeout: TimeInterval = 120) throws -> (status: Int32, records: [[String: Any]], stderr: String) {
        let inFile = dir.appendingPathComponent("in.jsonl"), out = dir.appendingPathComponent("out.jsonl"), err = dir.appendingPathComponent("err.txt")
        try Data(input.utf8).write(to: inFile)
        let quoted = ([TestPaths.pipelineBinary.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let result = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", "exec \(quoted) < '\(inFile.path)' > '\(out.path)' 2> '\(err.path)'"], timeout: timeout)
        let stdout = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        let records = stdout.split(separator: "\n").map { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? ["unparsed": String($0)] }
        return (result.status, records, (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    func script(_ text: String, named name: String, in dir: URL) -> String {
        let path = dir.appendingPathComponent(name).path
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        chmod(path, 0o755)
        return path
    }

    /// A program that never reads and ignores SIGTERM: a large command cannot block the write
    /// forever; the hook is declared dead once (every command rejected, the later ones at once);
    /// at the end it is killed, so the CLI neither waits on it nor leaves it running.
    @Test func aHookThatStopsReadingIsDeclaredDeadAndKilled() throws {
        let dir = try temporaryDirectory()
        let pidFile = dir.appendingPathComponent("hook.pid").path
        let hook = script(
            """
            #!/usr/bin/env python3
            import os, signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open("\(pidFile)", "w").write(str(os.getpid()))
            time.sleep(300)
            """, named: "deaf.py", in: dir)
        let big = String(repeating: "x", count: 1 << 20)
        let input = (0..<3).map { #"{"id":"c\#($0)","model":"m","prompt":"\#(big)"}"# }.joined(separator: "\n")
        let run = try run(["--hook-exec", hook, "--hook-timeout", "1", "--concurrency", "1", "--quiet"], input: input, in: dir)
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.records.count == 3)
        let messages = run.records.map { $0[path: "error.message"] as? String ?? "" }
        #expect(messages.allSatisfy { $0.contains("rejected by hook 'exec:deaf.py'") && $0.contains("the hook is dead") }, "\(messages)")
        #expect(messages.first?.contains("stopped reading") == true, "\(messages)")
        let pid = Int32((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "") ?? 0
        #expect(pid > 0)
        if pid > 0 {
            // Reaped or at least gone: kill(pid, 0) fails once the process no longer exists.
            #expect(kill(pid, 0) != 0, "the hook program (pid \(pid)) is still running")
        }
    }

    /// An extra line (a second answer for a question already settled) is dropped: it never
    /// decides the next command. Answers that name another, unasked question are a protocol
    /// error for that command only.
    @Test func anExtraOrForeignAnswerIsNeverTakenForAnotherCommand() throws {
        let dir = try temporaryDirectory()
        let hook = script(
            #"""
            #!/usr/bin/env python3
            import json, sys
            for line in sys.stdin:
                q = json.loads(line)
                out = []
                if q["hook"] == "after" and q["id"] == "first":
                    out.append({"index": q["index"], "hook": "after"})
                    out.append({"index": q["index"], "hook": "before", "reject": "extra line"})
                elif q["hook"] == "before" and q["id"] == "foreign":
                    out.append({"index": 999, "hook": "before", "reject": "for someone else"})
                    out.append({"index": q["index"], "hook": "before"})
                else:
                    out.append({"index": q["index"], "hook": q["hook"]})
                for answer in out:
                    sys.stdout.write(json.dumps(answer) + "\n")
                sys.stdout.flush()
            """#, named: "chatty.py", in: dir)
        let input = ["first", "second", "foreign", "last"].map { #"{"id":"\#($0)","model":"m","prompt":"hi"}"# }.joined(separator: "\n")
        let run = try run(["--hook-exec", hook, "--concurrency", "1", "--quiet"], input: input, in: dir)
        try #require(run.records.count == 4, "\(run.stderr)")
        #expect(run.records[0]["status"] as? String == "succeeded")
        #expect(run.records[1]["status"] as? String == "succeeded", "the extra reject of 'first' must not reject 'second': \(run.records[1])")
        #expect(run.records[2]["status"] as? String == "failed")
        #expect((run.records[2][path: "error.message"] as? String)?.contains("protocol error") == true, "\(run.records[2])")
        #expect(run.records[3]["status"] as? String == "succeeded", "\(run.records[3])")
        #expect(run.status == 1)
    }

    /// An answer without the question's index and hook is a protocol error, not an answer.
    @Test func anAnswerThatNamesNoQuestionIsAProtocolError() throws {
        let dir = try temporaryDirectory()
        let hook = script(
            "#!/bin/sh\nwhile read line; do echo '{}'; done\n", named: "anonymous.sh", in: dir)
        let run = try run(["--hook-exec", hook, "--quiet"], input: #"{"id":"a","model":"m","prompt":"hi"}"#, in: dir)
        #expect(run.status == 1)
        #expect((run.records.first?[path: "error.message"] as? String)?.contains("must echo \"index\"") == true, "\(run.records)")
    }

    /// `--timeout` covers hook time: a hook that never answers costs a command its --timeout,
    /// not the hook's deadline, and the command fails as a timeout.
    @Test func theCommandTimeoutCoversHookTime() throws {
        let dir = try temporaryDirectory()
        let hook = script("#!/usr/bin/env python3\nimport sys\nfor _ in sys.stdin:\n    pass\n", named: "silent.py", in: dir)
        let clock = ContinuousClock()
        let start = clock.now
        let run = try run(["--hook-exec", hook, "--hook-timeout", "600", "--timeout", "1", "--quiet"], input: #"{"id":"a","model":"m","prompt":"hi"}"#, in: dir)
        #expect(clock.now - start < .seconds(300), "the hook's 600 s deadline, not --timeout, ended the wait")
        #expect(run.records.first?[path: "error.kind"] as? String == "timeout", "\(run.records)")
        #expect((run.records.first?[path: "error.message"] as? String)?.contains("--timeout") == true, "\(run.records)")
    }
}
