import Foundation

/// One million shorthand commands through the release `pipeline` binary, results to
/// /dev/null: commands per second and the child's peak resident memory.
func cliScenario(commands: Int) -> [Figure] {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("pipeline")
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
        FileHandle.standardError.write(Data("cli: no pipeline binary at \(binary.path); run `swift build -c release` first\n".utf8))
        return [Figure(scenario: "cli", metric: "binary_missing", value: 1, unit: "count", goal: .exactly(0))]
    }
    let input = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-bench-cli-\(commands).jsonl")
    if !FileManager.default.fileExists(atPath: input.path) {
        // Written in chunks so this process stays small.
        _ = FileManager.default.createFile(atPath: input.path, contents: nil)
        if let handle = try? FileHandle(forWritingTo: input) {
            var text = ""
            for i in 0..<commands {
                text += #"{"model":"mock","prompt":"Summarise item \#(i) in one line."}"# + "\n"
                if text.utf8.count > 1 << 20 || i == commands - 1 {
                    handle.write(Data(text.utf8))
                    text = ""
                }
            }
            try? handle.close()
        }
    }
    let process = Process()
    process.executableURL = binary
    process.arguments = ["--quiet"]
    process.standardInput = try? FileHandle(forReadingFrom: input)
    process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    let clock = ContinuousClock()
    let start = clock.now
    do { try process.run() } catch {
        return [Figure(scenario: "cli", metric: "launch_failed", value: 1, unit: "count", goal: .exactly(0))]
    }
    // The child's own high-water mark (VmHWM is per address space, so it starts at exec).
    var peakKiB = 0
    while process.isRunning {
        peakKiB = max(peakKiB, highWaterMarkKiB(pid: process.processIdentifier) ?? 0)
        usleep(5_000)
    }
    process.waitUntilExit()
    let seconds = (clock.now - start).seconds
    let peakMB = Double(peakKiB) / 1024
    return [
        Figure(scenario: "cli", metric: "throughput", value: Double(commands) / seconds, unit: "commands/s", goal: .atLeast(200_000)),   // issue 12 item 4
        Figure(scenario: "cli", metric: "peak_memory", value: peakMB, unit: "MB", goal: .atMost(64)),
        Figure(scenario: "cli", metric: "wall_time", value: seconds, unit: "s", goal: .none),
        Figure(scenario: "cli", metric: "exit_status", value: Double(process.terminationStatus), unit: "code", goal: .exactly(0)),
    ]
}

/// `VmHWM` (peak resident set) of a running process, from /proc.
func highWaterMarkKiB(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

/// `VmRSS` (current resident set) of a running process, from /proc.
func residentKiB(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}
