import Foundation
import Testing

/// One rule for every path argument (`Design/security.md`, "Path arguments"): a target that is
/// not a regular file is refused at start with exit 2 (a character device the run writes is
/// written through instead), nothing is opened first (so no open blocks), nothing is ever
/// replaced but a regular file, and no regular file the run writes may be stdout's.
@Suite struct CLIPathArgumentTests {
    /// Runs the CLI through bash (so stdout can be a file), bounded: a blocked open fails the test.
    func run(_ arguments: [String], in dir: URL, stdout: String = "out.jsonl") throws -> (status: Int32, stderr: String) {
        let input = dir.appendingPathComponent("in.jsonl"), err = dir.appendingPathComponent("err.txt")
        try Data(#"{"id":"a","model":"m","prompt":"hi"}"#.utf8).write(to: input)
        let quoted = ([TestPaths.pipelineBinary.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let result = try runProcess(
            URL(fileURLWithPath: "/bin/bash"), ["-c", "cd '\(dir.path)' && exec \(quoted) < '\(input.path)' > '\(stdout)' 2> '\(err.path)'"], timeout: 60)
        return (result.status, (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    @Test func aFIFOIsRefusedAtStartAndNothingBlocks() throws {
        let dir = try temporaryDirectory()
        let fifo = dir.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        for arguments in [["--models", fifo], ["--sink", "jsonl:\(fifo)"], ["--sink", "sqlite:\(fifo)"], ["--stats-json", fifo], ["--resume", fifo]] {
            let run = try run(arguments, in: dir)
            #expect(run.status == 2, "\(arguments): exit \(run.status) \(run.stderr)")
            #expect(run.stderr.contains("FIFO") || run.stderr.contains("not a regular file"), "\(arguments): \(run.stderr)")
        }
    }

    /// The batch job file and its manifest follow the same rule: a FIFO, a directory or a device
    /// is refused with exit 2 before stdin is read or anything is sent, and no open blocks.
    @Test func batchJobFilesFollowTheRule() throws {
        let dir = try temporaryDirectory()
        let fifo = dir.appendingPathComponent("job.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let manifestFIFO = dir.appendingPathComponent("other.json.manifest.jsonl").path
        #expect(mkfifo(manifestFIFO, 0o600) == 0)
        for arguments in [
            ["batch", "submit", "--job", fifo], ["batch", "status", fifo], ["batch", "collect", fifo],
            ["batch", "submit", "--job", dir.path], ["batch", "status", "/dev/null"],
            ["batch", "submit", "--job", dir.appendingPathComponent("other.json").path],
        ] {
            let run = try run(arguments, in: dir)
            #expect(run.status == 2, "\(arguments): exit \(run.status) \(run.stderr)")
            #expect(run.stderr.contains("not a regular file"), "\(arguments): \(run.stderr)")
        }
    }

    @Test func aDirectoryIsRefusedAtStart() throws {
        let dir = try temporaryDirectory()
        for arguments in [["--models", dir.path], ["--sink", "jsonl:\(dir.path)"], ["--stats-json", dir.path]] {
            let run = try run(arguments, in: dir)
            #expect(run.status == 2, "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains("a directory, not a regular file"), "\(arguments): \(run.stderr)")
        }
    }

    /// `--stats-json` through a symbolic link replaces the link's target, never the link (which
    /// once became a regular file, as a device did when run as root).
    @Test func statsJSONThroughALinkKeepsTheLink() throws {
        let dir = try temporaryDirectory(files: ["real.json": "old"])
        let link = dir.appendingPathComponent("stats.json").path
        #expect(symlink(dir.appendingPathComponent("real.json").path, link) == 0)
        let run = try run(["--stats-json", link, "--quiet"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        var info = stat()
        #expect(lstat(link, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK, "the link was replaced")
        let written = (try? String(contentsOfFile: dir.appendingPathComponent("real.json").path, encoding: .utf8)) ?? ""
        #expect(written.contains("\"models\"") || written.hasPrefix("{"), "the target holds the stats: \(written.prefix(200))")
    }

    /// A character device is written through and never replaced (as root, `--stats-json
    /// /dev/null` once replaced the system's device); one made here with `mknod` when allowed
    /// (as root), else /dev/null itself, which a fixed run only writes through. Reading one
    /// (`--models`) is refused.
    @Test func aDeviceIsWrittenThroughAndNeverReplaced() throws {
        let dir = try temporaryDirectory()
        var device = dir.appendingPathComponent("null").path
        if mknod(device, S_IFCHR | 0o666, dev_t((1 << 8) | 3)) != 0 { device = "/dev/null" }
        for arguments in [["--stats-json", device], ["--sink", "jsonl:\(device)"]] {
            let run = try run(arguments + ["--quiet"], in: dir)
            #expect(run.status == 0, "\(arguments): \(run.stderr)")
            var info = stat()
            #expect(lstat(device, &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR, "\(arguments): the device was replaced")
        }
        let models = try run(["--models", device], in: dir)
        #expect(models.status == 2 && models.stderr.contains("a character device, not a regular file"), "\(models.stderr)")
    }

    @Test func aFileTheRunWritesMustNotBeStdout() throws {
        let dir = try temporaryDirectory()
        for arguments in [["--sink", "jsonl:out.jsonl"], ["--stats-json", "out.jsonl"], ["--sink", "sqlite:out.jsonl"]] {
            try Data().write(to: dir.appendingPathComponent("out.jsonl"))
            let run = try run(arguments, in: dir, stdout: "out.jsonl")
            #expect(run.status == 2, "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains("the file stdout writes to"), "\(arguments): \(run.stderr)")
        }
    }

    /// `pipeline report --stats-json` follows the rule of `run` (one check-then-write): a FIFO or
    /// directory is refused at start with exit 2 (nothing opened, so nothing blocks), a device is
    /// written through and stays a device, and a link stays a link with its target replaced.
    @Test func reportStatsJSONFollowsTheRule() throws {
        let dir = try temporaryDirectory(files: ["r.jsonl": #"{"id":"a","status":"succeeded","telemetry":{}}"# + "\n", "real.json": "old"])
        let fifo = dir.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        for target in [fifo, dir.path] {
            let run = try run(["report", "r.jsonl", "--stats-json", target], in: dir, stdout: "page.html")
            #expect(run.status == 2, "\(target): exit \(run.status) \(run.stderr)")
            #expect(run.stderr.contains("not a regular file"), "\(target): \(run.stderr)")
        }
        var info = stat()
        #expect(lstat(fifo, &info) == 0 && (info.st_mode & S_IFMT) == S_IFIFO, "the FIFO is still a FIFO")

        var device = dir.appendingPathComponent("null").path
        if mknod(device, S_IFCHR | 0o666, dev_t((1 << 8) | 3)) != 0 { device = "/dev/null" }
        let written = try run(["report", "r.jsonl", "--stats-json", device], in: dir, stdout: "page.html")
        #expect(written.status == 0, "\(written.stderr)")
        #expect(lstat(device, &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR, "the device was replaced")

        let link = dir.appendingPathComponent("stats.json").path
        #expect(symlink(dir.appendingPathComponent("real.json").path, link) == 0)
        let linked = try run(["report", "r.jsonl", "--stats-json", link], in: dir, stdout: "page.html")
        #expect(linked.status == 0, "\(linked.stderr)")
        #expect(lstat(link, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK, "the link was replaced")
        let stats = (try? String(contentsOfFile: dir.appendingPathComponent("real.json").path, encoding: .utf8)) ?? ""
        #expect(stats.contains("\"models\""), "the target holds the stats: \(stats.prefix(200))")
    }

    /// A one-character relative name is an ordinary file (its directory once came from
    /// `NSString.deletingLastPathComponent`, which traps on one character).
    @Test func aOneCharacterStatsPathIsWritten() throws {
        let dir = try temporaryDirectory(files: ["r.jsonl": #"{"id":"a","status":"succeeded","telemetry":{}}"# + "\n"])
        for arguments in [["--stats-json", "s", "--quiet"], ["report", "r.jsonl", "--stats-json", "t"]] {
            let run = try run(arguments, in: dir, stdout: "page.html")
            #expect(run.status == 0, "\(arguments): exit \(run.status) \(run.stderr.prefix(300))")
            let name = arguments[arguments.firstIndex(of: "--stats-json")! + 1]
            let stats = (try? String(contentsOfFile: dir.appendingPathComponent(name).path, encoding: .utf8)) ?? ""
            #expect(stats.contains("\"models\""), "\(arguments): \(stats.prefix(200))")
        }
    }
}
