import CommandPipeline
import CommandPipelineReport
import Foundation

/// `pipeline report RESULTS.jsonl… [--stats-json FILE] [--title TEXT] > report.html`: reads result
/// files line by line into one `RunReport` and writes one self-contained HTML page (`ReportPage`).
struct ReportOptions {
    var files: [String] = []
    var statsJSON: String?
    var title = "pipeline report"

    /// `--title`: at most this many characters.
    static let maxTitle = 200

    static func parse(_ arguments: ArraySlice<String>) throws(UsageError) -> ReportOptions {
        var options = ReportOptions()
        var rest = arguments
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--") else {
                options.files.append(argument)
                continue
            }
            var name = argument
            var value: String?
            if let eq = argument.firstIndex(of: "=") {
                name = String(argument[..<eq])
                value = String(argument[argument.index(after: eq)...])
            }
            guard name == "--stats-json" || name == "--title" else {
                throw UsageError(message: "unknown option '\(name)' for 'report'", hint: ArgumentParser.suggestion(name, among: ["--stats-json", "--title"]))
            }
            if value == nil { value = rest.popFirst() }
            guard let value else { throw UsageError(message: "option '\(name)' needs a value") }
            if name == "--title" {
                guard value.count <= maxTitle else { throw UsageError(message: "option '--title' takes at most \(maxTitle) characters, got \(value.count)") }
                options.title = value
            } else {
                guard !value.isEmpty else { throw UsageError(message: "option '--stats-json' needs a file name") }
                options.statsJSON = value
            }
        }
        guard !options.files.isEmpty else {
            throw UsageError(message: "'report' needs at least one results file", hint: "pipeline report results.jsonl > report.html")
        }
        return options
    }
}

enum ReportCommand {
    /// Longest line read as one record; a longer one is skipped (and counted) without being held.
    static let maxLine = 64 << 20

    static func main(_ options: ReportOptions) -> Int32 {
        // The path rule (PathArgument) before anything is read: a FIFO or directory is refused
        // (exit 2) and nothing is opened; checked again when written.
        var statsTarget: PathArgument.Target?
        if let path = options.statsJSON {
            do throws(UsageError) { statsTarget = try PathArgument.check(path, option: "--stats-json", use: .replace) } catch { return Pipeline.usageFailure(error) }
        }
        var report = RunReport()
        for path in options.files {
            if let problem = read(path, into: &report) {
                StandardError.write("Error: cannot read '\(StandardError.oneLine(path))': \(problem)\n")
                return 2
            }
        }
        if let path = options.statsJSON, let problem = PathArgument.writeWhole(StatsReport.json(report), to: path, option: "--stats-json", checked: statsTarget) {
            StandardError.write("Error: cannot write --stats-json: \(problem)\n")
            return 3
        }
        let page = ReportPage.html(report, title: options.title, sources: options.files)
        guard StandardStreams.writeStdout(page) else {
            return Pipeline.outputFailure(StandardStreams.stdoutClosed ? "stdout is closed" : String(cString: strerror(errno)))
        }
        for bad in report.badLines {
            StandardError.write("pipeline: report: \(StandardError.oneLine(bad.source)):\(bad.line): skipped: \(StandardError.oneLine(bad.problem))\n")
        }
        let t = report.totals
        StandardError.write(String(format: "pipeline: report: %d results (%d succeeded, %d failed), cost $%.6f", t.commands, t.succeeded, t.failed, t.costUSD)
            + (t.unreportedCalls > 0 ? ", \(t.unreportedCalls) call\(t.unreportedCalls == 1 ? "" : "s") without reported usage (token counts and cost are lower bounds)" : "")
            + (report.badLineCount > 0 ? ", \(report.badLineCount) line\(report.badLineCount == 1 ? "" : "s") skipped (not results)" : "") + "\n")
        return report.badLineCount > 0 ? 1 : 0
    }

    /// Streams `path` into `report`, one line at a time; nil, or why it could not be read at all.
    static func read(_ path: String, into report: inout RunReport) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { return "it is a directory" }
        let size = 1 << 16
        let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: size)
        defer { chunk.deallocate() }
        var line: [UInt8] = []
        var number = 1
        var overlong = false
        while true {
            let n = Foundation.read(fd, chunk.baseAddress!, size)
            if n < 0 {
                if errno == EINTR { continue }
                return String(cString: strerror(errno))
            }
            if n == 0 { break }
            var start = 0
            for i in 0..<n where chunk[i] == 0x0a {
                if !overlong { line.append(contentsOf: chunk[start..<i]) }
                finish(&line, overlong: overlong, path: path, number: number, into: &report)
                overlong = false
                number += 1
                start = i + 1
            }
            if !overlong && start < n {
                line.append(contentsOf: chunk[start..<n])
                if line.count > maxLine {
                    overlong = true
                    line = []
                }
            }
        }
        // The file ends without a newline: a whole record there still counts, a torn one is named.
        if overlong || !line.isEmpty { finish(&line, overlong: overlong, path: path, number: number, into: &report) }
        return nil
    }

    private static func finish(_ line: inout [UInt8], overlong: Bool, path: String, number: Int, into report: inout RunReport) {
        if overlong {
            report.badLine(source: path, line: number, problem: "a line longer than 64 MiB")
        } else {
            report.add(line: line, source: path, line: number)
        }
        line.removeAll(keepingCapacity: line.count <= 1 << 20)
    }
}
