import Foundation
import Testing

/// Issue 21 (trust, round 3), the CLI's side of classes 6 and 8: bounded `batch submit` input,
/// decimal-only number flags, and stderr lines that quote input with their control characters
/// escaped.
@Suite struct CLITrustRound3Tests {
    /// Floating-point flags take decimals only: hex, exponents, infinities, signs and spaces
    /// are usage errors naming the flag (Double(_:) alone would take `0x10` as 16).
    @Test(arguments: ["--max-cost", "--timeout", "--call-timeout", "--sink-timeout"])
    func numberFlagsRejectNonDecimalForms(flag: String) async throws {
        for value in ["0x10", "0X1p3", "1e2", "1E-1", "inf", "nan", "+5", "-0", " 5", "5 ", "5_0", "1.2.3", ".", ""] {
            let run = try await CLI.run(["\(flag)=\(value)", "--quiet"], stdin: "")
            #expect(run.status == 2, "\(flag) \(value.debugDescription): \(run.stderr)")
            #expect(run.stderr.contains(flag), "\(flag) \(value.debugDescription): \(run.stderr)")
        }
        for value in ["5", "0.5", ".5", "2."] {
            let run = try await CLI.run(["\(flag)=\(value)", "--quiet"], stdin: "")
            #expect(run.status == 0, "\(flag) \(value): \(run.stderr)")
        }
    }

    @Test func batchNumberFlagsRejectNonDecimalForms() async throws {
        for value in ["0x10", "1e1", "inf"] {
            let run = try await CLI.run(["batch", "status", "job.json", "--poll-seconds", value])
            #expect(run.status == 2 && run.stderr.contains("--poll-seconds"), "\(value): \(run.stderr)")
        }
    }

    /// A model name with an escape sequence and a newline: the notice quotes it escaped, on one line.
    @Test func theUnknownModelNoticeEscapesControlCharacters() async throws {
        let run = try await CLI.run([], stdin: #"{"id":"a","model":"x\u001b[31mred\nforged: line","prompt":"h"}"# + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!run.stderr.contains("\u{1b}"), "\(run.stderr.debugDescription)")
        #expect(!run.stderr.contains("\nforged"), "\(run.stderr.debugDescription)")
        #expect(run.stderr.contains(#"x\u{1b}[31mred\nforged: line"#), "\(run.stderr.debugDescription)")
    }

    /// A command id with control characters in a sink's failure message: escaped, one line.
    @Test func sinkFailuresEscapeTheCommandID() async throws {
        let run = try await CLI.run(
            ["--sink", "webhook:http://127.0.0.1:9/hook", "--sink-timeout", "5"],
            stdin: #"{"id":"bad\u001b]0;title\u0007\nforged","model":"m","prompt":"h"}"# + "\n")
        #expect(run.stderr.contains(#"'bad\u{1b}]0;title\u{7}\nforged'"#), "\(run.stderr.debugDescription)")
        #expect(!run.stderr.contains("\u{1b}") && !run.stderr.contains("\u{07}"), "\(run.stderr.debugDescription)")
        #expect(!run.stderr.contains("\nforged"), "\(run.stderr.debugDescription)")
    }

    /// Issue 21 class 6: `batch submit` reads stdin as a stream, like `run`: 24 MiB of NUL bytes
    /// (garbage without a newline) keep the process far below the input's size. The peak RSS is
    /// measured by a Python parent (`ru_maxrss` of its only child).
    @Test func batchSubmitDoesNotHoldItsInput() async throws {
        let dir = try CLI.temporaryDirectory()
        let zeros = dir.appendingPathComponent("zeros.bin")
        #expect(FileManager.default.createFile(atPath: zeros.path, contents: nil))
        let handle = try FileHandle(forWritingTo: zeros)
        try handle.truncate(atOffset: 24 << 20)  // sparse: no disk, reads as zeros
        try handle.close()
        let script = """
            import resource, subprocess, sys
            with open(sys.argv[1], 'rb') as f:
                p = subprocess.run(sys.argv[2:], stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
            print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, zeros.path, CLI.binary.path, "batch", "submit", "--job", dir.appendingPathComponent("job.json").path, "--quiet"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = try await onOwnThread {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return data
        }
        let fields = String(decoding: data, as: UTF8.self).split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        let peakKiB = try #require(fields.count == 2 ? Int(fields[1]) : nil, "\(fields)")
        // The process itself takes ~30 MiB; holding the input would add 24 MiB or more.
        #expect(peakKiB < 48 << 10, "peak RSS \(peakKiB) KiB for 24 MiB of input")
    }
}
