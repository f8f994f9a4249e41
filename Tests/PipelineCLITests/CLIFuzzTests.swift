import Foundation
import Testing

/// A seeded fuzz test of the CLI: generated and damaged command streams, random flags within
/// and beyond their ranges. It asserts that the CLI never dies of a signal, writes exactly one
/// record per input value — counted independently by a reference splitter in Python built on
/// the `json` module's `raw_decode` (below) — that every stdout line is JSON, that every intact
/// generated command comes out `succeeded` at its own index, and that the exit status is 0/1
/// (2 only for an out-of-range flag, and then with nothing on stdout).
///
/// Size: `PIPELINE_FUZZ_COMMANDS` generated values (default 3,000, a few seconds);
/// `PIPELINE_FUZZ_COMMANDS=100000` for a long run. `PIPELINE_FUZZ_SEED` replays a seed (printed
/// on failure). Int.max-sized integers go into the integer fields of commands (max_tokens,
/// rate_constraint, token_estimate, ttl_seconds) too: they must be `invalid_command` records.
@Suite struct CLIFuzzTests {
    static var size: Int { ProcessInfo.processInfo.environment["PIPELINE_FUZZ_COMMANDS"].flatMap(Int.init) ?? 3000 }
    static var seed: UInt64 { ProcessInfo.processInfo.environment["PIPELINE_FUZZ_SEED"].flatMap(UInt64.init) ?? 20261122 }
    static let hugeIntegers = true

    @Test func damagedStreamsYieldExactlyOneRecordPerValueAndNeverCrash() async throws {
        let seed = Self.seed
        var rng = SeededRandom(seed: seed)
        var remaining = Self.size
        var batch = 0
        while remaining > 0 {
            let count = min(remaining, Int.random(in: 500...5000, using: &rng))
            remaining -= count
            var generator = StreamGenerator(rng: SeededRandom(seed: rng.next()), hugeIntegers: Self.hugeIntegers)
            let input = generator.stream(values: count)
            let flags = FlagGenerator.withinRange(&rng)
            try await check(input: input, intact: generator.intact, flags: flags, context: "seed \(seed), batch \(batch), flags \(flags)")
            batch += 1
        }
    }

    @Test func flagsBeyondTheirRangesAreUsageErrorsWithNothingOnStdout() async throws {
        var rng = SeededRandom(seed: Self.seed ^ 0xF1A6)
        for _ in 0..<12 {
            let flags = FlagGenerator.beyondRange(&rng)
            let run = try await bounded(flags, stdin: #"{"model":"m","prompt":"x"}"#, seconds: 60)
            #expect(run.status == 2, "seed \(Self.seed): \(flags)")
            #expect(run.stdout.isEmpty, "seed \(Self.seed): \(flags)")
            #expect(run.stderr.contains("Error: option '\(flags[0])'"), "seed \(Self.seed): \(flags): \(run.stderr)")
        }
    }

    /// Huge integers in the integer fields of commands become `invalid_command` records naming
    /// the field (range-checked by `PlannedCommand.validationIssues()`), never traps.
    @Test func hugeIntegersInCommandFieldsNeverCrash() async throws {
        let fields = [
            #"{"model":"m","prompt":"a","token_estimate":{"min_tokens":1,"expected_tokens":2,"max_tokens":9223372036854775807}}"#,
            #"{"plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"x"}],"config":{"max_tokens":9223372036854775807}}]}}"#,
            #"{"plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"x"}]}],"rate_constraint":{"requests_per_minute":9223372036854775807,"tokens_per_minute":9223372036854775807}}}"#,
            #"{"plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"x"}]}],"cache":{"ttl_seconds":9223372036854775807}}}"#,
        ]
        let run = try await bounded(["--quiet"], stdin: fields.joined(separator: "\n"), seconds: 60)
        #expect(run.status == 1, "every command fails, none crashes: \(run.stderr)")
        #expect(run.lines.count == fields.count)
        let paths = run.records.map { ($0["error"] as? [String: Any])?["path"] as? String }
        #expect(run.records.allSatisfy { ($0["error"] as? [String: Any])?["kind"] as? String == "invalid_command" })
        #expect(paths == ["token_estimate.max_tokens", "plan.calls[0].config.max_tokens", "plan.rate_constraint.requests_per_minute", "plan.cache.ttl_seconds"])
    }

    /// Runs the CLI on `input` and compares with the reference splitter.
    private func check(input: [UInt8], intact: [[UInt8]: String], flags: [String], context: String) async throws {
        let expected = try ReferenceSplitter.split(input)
        let validate = flags.first == "validate"
        let run = try await bounded(flags, stdin: Data(input), seconds: 600)
        var problems: [String] = []
        if run.status == nil { problems.append("the CLI died of a signal or hung; stderr: \(run.stderr.suffix(2000))") }
        if let status = run.status, status != 0 && status != 1 { problems.append("exit status \(status); stderr: \(run.stderr.suffix(500))") }
        var byIndex: [Int: [String: Any]] = [:]
        for line in run.lines {
            guard let record = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any], let index = record["index"] as? Int else {
                problems.append("a stdout line is not a JSON record: \(line.prefix(200))")
                continue
            }
            if byIndex.updateValue(record, forKey: index) != nil { problems.append("two records for index \(index)") }
        }
        if run.lines.count != expected.count {
            problems.append("\(run.lines.count) records for \(expected.count) input values")
        }
        if Set(byIndex.keys) != Set(0..<expected.count) && problems.count < 5 { problems.append("the indices are not 0..<\(expected.count)") }
        var allSucceeded = true
        for (index, span) in expected.enumerated() {
            let record = byIndex[index]
            if record?["status"] as? String == "failed" { allSucceeded = false }
            guard let span, let id = intact[Array(input[span])] else { continue }
            let status = record?["status"] as? String
            if record?["id"] as? String != id || status != (validate ? "valid" : "succeeded") {
                problems.append("the intact command \(id) at index \(index) came out as \(String(describing: record?["id"])) \(String(describing: status)): \(String(describing: record?["error"]))")
            }
            if problems.count > 10 { break }
        }
        if run.status == 0 && !allSucceeded { problems.append("exit status 0 with failed records") }
        if problems.isEmpty { return }
        let saved = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-fuzz-\(UUID().uuidString).bin")
        try? Data(input).write(to: saved)
        let report = problems.prefix(10).joined(separator: "\n")
        Issue.record("\(context): input saved to \(saved.path)\n\(report)")
    }
}


enum FlagGenerator {
    /// Flags inside their documented ranges that keep a run fast (no pacing, no latency).
    static func withinRange(_ rng: inout SeededRandom) -> [String] {
        if Int.random(in: 0..<8, using: &rng) == 0 {
            var flags = ["validate", "--quiet", "--concurrency", String([1, 3, 64, 10_000].randomElement(using: &rng)!)]
            if Bool.random(using: &rng) { flags.append("--unordered") }
            return flags
        }
        var flags = ["--quiet", "--concurrency", String([1, 2, 7, 64, 1000, 10_000].randomElement(using: &rng)!)]
        if Bool.random(using: &rng) { flags.append("--unordered") }
        if Bool.random(using: &rng) { flags += ["--max-attempts", String(Int.random(in: 1...100, using: &rng))] }
        if Bool.random(using: &rng) { flags += ["--timeout", ["3600", "604800", "86400.5"].randomElement(using: &rng)!] }
        if Bool.random(using: &rng) { flags += ["--call-timeout", ["600", "604800"].randomElement(using: &rng)!] }
        if Bool.random(using: &rng) { flags += ["--rate-limit-rpm", String(Int.random(in: 5_000_000...10_000_000, using: &rng))] }
        if Bool.random(using: &rng) { flags += ["--rate-limit-tpm", String(Int.random(in: 5_000_000_000...10_000_000_000, using: &rng))] }
        if Bool.random(using: &rng) { flags += ["--mock-latency-ms", String(Int.random(in: 0...1, using: &rng))] }
        return flags
    }

    /// One flag just or far beyond its range, or not a number at all.
    static func beyondRange(_ rng: inout SeededRandom) -> [String] {
        let huge = ["9223372036854775807", "9223372036854775808", "-9223372036854775808", "1e308", "99999999999999999999999", "nan", "inf", "-1", "0x10", ""]
        let cases: [(String, [String])] = [
            ("--concurrency", ["0", "10001"] + huge),
            ("--max-attempts", ["0", "101"] + huge),
            ("--timeout", ["0", "0.0009", "604800.5", "1e16"] + huge),
            ("--call-timeout", ["0", "604801", "1e16"] + huge),
            ("--rate-limit-rpm", ["0", "10000001"] + huge),
            ("--rate-limit-tpm", ["0", "10000000001"] + huge),
            ("--mock-latency-ms", ["3600001"] + huge),
        ]
        let (flag, values) = cases.randomElement(using: &rng)!
        return [flag, values.randomElement(using: &rng)!]
    }
}

/// Generates a stream of values: valid commands (shorthand, full, pretty-printed, indent=0, in
/// arrays), invalid commands, and damage — flipped, cut or inserted bytes, BOMs, invalid UTF-8,
/// nested garbage, huge numbers, deep nesting. `intact` maps the exact bytes of every valid
/// command left undamaged to its id.
struct StreamGenerator {
    var rng: SeededRandom
    let hugeIntegers: Bool
    private(set) var intact: [[UInt8]: String] = [:]
    private var serial = 0

    init(rng: SeededRandom, hugeIntegers: Bool) {
        self.rng = rng
        self.hugeIntegers = hugeIntegers
    }

    mutating func stream(values: Int) -> [UInt8] {
        var out: [UInt8] = []
        if Int.random(in: 0..<4, using: &rng) == 0 { out += [0xEF, 0xBB, 0xBF] }
        var produced = 0
        while produced < values {
            let piece = segment()
            produced += max(1, piece.values)
            out += piece.bytes
            out += separator()
        }
        return out
    }

    private mutating func separator() -> [UInt8] {
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: return Array(" ".utf8)
        case 1: return Array("\r\n".utf8)
        case 2: return Array("\n\n\t".utf8)
        default: return [0x0a]
        }
    }

    private mutating func nextID() -> String {
        serial += 1
        return "ok-\(serial)"
    }

    private mutating func text() -> String {
        ["hello", "é ünïcode 😀", "quote \\\" and backslash \\\\", "tab\\tnew\\nline", "}{][,:", "\\u00e9\\ud83d\\ude00", ""].randomElement(using: &rng)!
    }

    /// A valid command (compact JSON), recorded as intact under its id.
    private mutating func validCommand() -> [UInt8] {
        let id = nextID()
        let command: String
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: command = #"{"id":"\#(id)","model":"m","prompt":"\#(text())"}"#
        case 1: command = #"{"id":"\#(id)","model":"m","prompts":["\#(text())","\#(text())"],"system":"s","metadata":{"n":[1,2.5,-3e2,true,null,{"x":"y"}]}}"#
        case 2: command = #"{"id":"\#(id)","plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"\#(text())"}],"config":{"temperature":0.5,"max_tokens":64}}]},"token_estimate":{"min_tokens":1,"expected_tokens":2,"max_tokens":30}}"#
        default: command = #"{"id":"\#(id)","model":"m","prompt":"p","fallback_model":"m2","cache":{"ttl_seconds":60}}"#
        }
        let bytes = Array(command.utf8)
        intact[bytes] = id
        return bytes
    }

    /// Valid JSON that is not a valid command (one failed record each).
    private mutating func invalidCommand() -> [UInt8] {
        let huge = hugeIntegers ? ["9223372036854775807", "4611686018427387904"] : []
        let number = (["99999999999999999999999", "-9223372036854775808", "1e400", "-1", "0", "1.5"] + huge).randomElement(using: &rng)!
        let options = [
            #"{"plan":{}}"#, #"{"model":"m"}"#, #"{"model":"m","prompt":"a","temprature":1}"#, "[]", "42", #""just a string""#, "null",
            #"{"model":"m","prompt":"a","metadata":{"k":1,"k":2}}"#,
            #"{"model":"m","prompt":"a","token_estimate":{"min_tokens":\#(number),"expected_tokens":\#(number),"max_tokens":\#(number)}}"#,
            #"{"plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"x"}],"config":{"max_tokens":\#(number),"seed":\#(number)}}],"cache":{"ttl_seconds":\#(number)}}}"#,
            #"{"model":"m","prompt":"a","metadata":{"big":\#(number)}}"#,
            #"{"plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"x"}]}],"rate_constraint":{"requests_per_minute":\#(number),"tokens_per_minute":\#(number)}}}"#,
        ]
        return Array(options.randomElement(using: &rng)!.utf8)
    }

    /// Bytes for damage: anything except the letters of NaN and Infinity (Python's json would
    /// read those as numbers; they are not JSON).
    private mutating func damageByte() -> UInt8 {
        let structural = Array("{}[]\",:\\ \n0123456789-+.eEtrufalsn".utf8)
        if Bool.random(using: &rng) { return structural.randomElement(using: &rng)! }
        while true {
            let byte = UInt8.random(in: 0...255, using: &rng)
            if byte != UInt8(ascii: "N") && byte != UInt8(ascii: "I") { return byte }
        }
    }

    private mutating func damaged(_ bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<Int.random(in: 1...3, using: &rng) where !bytes.isEmpty {
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: bytes[at] = damageByte()
            case 1: bytes.removeSubrange(at...)
            case 2: bytes.insert(damageByte(), at: at)
            default: bytes.remove(at: at)
            }
        }
        return bytes
    }

    private mutating func pretty(_ bytes: [UInt8], indent: Int) -> [UInt8] {
        // Re-lay a compact command out over lines, as json.dumps(indent=…) does (outside strings).
        var out: [UInt8] = []
        var depth = 0
        var inString = false, escaped = false
        func newline(_ out: inout [UInt8]) {
            out.append(0x0a)
            out += [UInt8](repeating: 0x20, count: max(depth, 0) * indent)
        }
        for byte in bytes {
            if inString {
                out.append(byte)
                if escaped { escaped = false } else if byte == 0x5c { escaped = true } else if byte == 0x22 { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true; out.append(byte)
            case UInt8(ascii: "{"), UInt8(ascii: "["): out.append(byte); depth += 1; newline(&out)
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1; newline(&out); out.append(byte)
            case UInt8(ascii: ","): out.append(byte); newline(&out)
            case UInt8(ascii: ":"): out += Array(": ".utf8)
            default: out.append(byte)
            }
        }
        return out
    }

    /// One segment and how many values it was meant to hold (for sizing only; the count checked
    /// comes from the reference splitter).
    private mutating func segment() -> (bytes: [UInt8], values: Int) {
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<45: return (validCommand(), 1)
        case 45..<52:
            let id = nextID()
            let compact = Array(#"{"id":"\#(id)","plan":{"calls":[{"model":"m","parts":[{"type":"text","text":"\#(text())"}]}]},"metadata":{"a":{"b":[1,{"c":null}]}}}"#.utf8)
            let laidOut = pretty(compact, indent: [0, 2, 4].randomElement(using: &rng)!)
            intact[laidOut] = id
            return (laidOut, 1)
        case 52..<57:
            let elements = (0..<Int.random(in: 0...3, using: &rng)).map { _ in validCommand() }
            return (Array("[".utf8) + Array(elements.joined(separator: Array(",\n ".utf8))) + Array("]".utf8), elements.count)
        case 57..<67: return (invalidCommand(), 1)
        case 67..<85:
            // Damage, then make sure the intact map does not list a command we changed.
            let original = Bool.random(using: &rng) ? validCommand() : invalidCommand()
            intact[original] = nil
            let result = damaged(original)
            if Bool.random(using: &rng) { return (pretty(result, indent: 2), 1) }
            return (result, 1)
        case 85..<89:
            // Invalid UTF-8 inside or outside a string, or a stray BOM.
            let bad: [[UInt8]] = [[0xFF], [0xC3, 0x28], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC0, 0xAF], [0xEF, 0xBB, 0xBF]]
            let b = bad.randomElement(using: &rng)!
            if Bool.random(using: &rng) { return (Array(#"{"model":"m","prompt":"x"#.utf8) + b + Array(#""}"#.utf8), 1) }
            return (b + Array(#"{"model":"m"}"#.utf8), 1)
        case 89..<94:
            // Nested garbage and plain text.
            let options = [#"{"a":[{"b":[ garbage ]}]}"#, "this is not json", #"{"a":{"b":{"c":"#, "}}}]]]", #"{"a" "b"}"#, "\u{0}\u{0}\u{1}", #"[{"x":1},,{"y":2}]"#, #"{"s":"unterminated"#, "\\\\\\", #"{"k":tru,"l":fals}"#]
            return (Array(options.randomElement(using: &rng)!.utf8), 1)
        default:
            // Deep nesting: within the 512 limit, at it, and beyond it.
            let depth = [10, 300, 511, 512, 513, 700].randomElement(using: &rng)!
            let closed = Bool.random(using: &rng)
            let body = String(repeating: "[", count: depth) + (closed ? String(repeating: "]", count: depth) : "")
            return (Array((#"{"model":"m","prompt":"deep","metadata":{"d":"# + body + (closed ? "}}" : "")).utf8), 1)
        }
    }
}

/// The expected split, computed independently of the Swift splitter: Python's `json` module
/// (`raw_decode`) finds where valid values end and where broken ones fail; the recovery rules of
/// Design/wire-format.md ("Input") are applied on top.
enum ReferenceSplitter {
    /// For each input value, in order: the byte range of a valid value, or nil for a failed one.
    static func split(_ input: [UInt8]) throws -> [Range<Int>?] {
        if let problem = TestPaths.pythonPeersProblem { throw ReferenceError(message: problem) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("reference_split.py"), data = dir.appendingPathComponent("input.bin")
        try Data(source.utf8).write(to: script)
        try Data(input).write(to: data)
        let output = Pipe(), errors = Pipe()
        let run = try Launched([script.path, data.path], executable: TestPaths.python, stdin: FileHandle.nullDevice, stdout: output, stderr: errors, limit: 600)
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard run.wait(seconds: 600) == 0, let spans = try JSONSerialization.jsonObject(with: out) as? [Any] else {
            throw ReferenceError(message: "the reference splitter failed: \(err)")
        }
        return spans.map { span in (span as? [Int]).map { $0[0]..<$0[1] } }
    }

    struct ReferenceError: Error { var message: String }

    static let source = #"""
import json, sys

sys.setrecursionlimit(5000)
MAX_DEPTH = 512
WS = ' \t\n\r'
SCALAR_START = '-0123456789tfn'
DELIMITERS = ' \t\n\r,]}:{["'

def reject_constant(name):
    raise ValueError('not JSON: ' + name)

decoder = json.JSONDecoder(parse_constant=reject_constant)

def split(data):
    # latin-1: one character per byte, so positions are byte offsets; the json module then checks
    # structure only (bytes >= 0x80 are ordinary string characters), as the splitter does.
    s = data.decode('latin-1')
    n = len(s)
    pos = 3 if s.startswith('\xef\xbb\xbf') else 0
    in_array = False
    out = []

    def line_start(p):
        return s.rfind('\n', 0, p) + 1

    def opens_line(p):
        return s[line_start(p):p].strip(' \t\r') == ''

    def next_line(p):
        q = s.find('\n', p)
        return n if q < 0 else q + 1

    def resume(q, column):
        # From q (a line start, or the first non-blank byte of a line): the first line whose first
        # non-blank byte can start a command at a column <= column.
        while q < n:
            while q < n and s[q] in WS:
                q += 1
            if q >= n:
                return n
            c = s[q]
            if (c in '{[' or (in_array and c in ',]')) and q - line_start(q) <= column:
                return q
            q = next_line(q)
        return n

    def too_deep(start, limit):
        # Where the 513th open container begins, before `limit`; None if nesting stays in bounds.
        depth, in_string, escaped = 0, False, False
        for k in range(start, limit):
            c = s[k]
            if in_string:
                if escaped: escaped = False
                elif c == '\\': escaped = True
                elif c == '"': in_string = False
            elif c == '"': in_string = True
            elif c in '{[':
                depth += 1
                if depth > MAX_DEPTH:
                    return k
            elif c in '}]':
                depth -= 1
        return None

    def open_depth(start, at):
        # Containers open at `at` in the value that starts at `start` (strings skipped).
        depth, in_string, escaped = 0, False, False
        for k in range(start, at):
            c = s[k]
            if in_string:
                if escaped: escaped = False
                elif c == '\\': escaped = True
                elif c == '"': in_string = False
            elif c == '"': in_string = True
            elif c in '{[': depth += 1
            elif c in '}]': depth -= 1
        return depth

    def line_candidate(q, column):
        # At a line start (q may sit on blanks): where a command can start, else None and the
        # first non-blank byte.
        while q < n and s[q] in WS:
            q += 1
        if q >= n:
            return n, q
        if (s[q] in '{[' or s[q] in ',]') and q - line_start(q) <= column:
            return q, q
        return None, q

    def skip_element(q, depth, column):
        # A broken element of a top-level array ends at its own ',' or ']' (brackets followed,
        # strings skipped); a line that can start a command ends it too.
        in_string = escaped = False
        while q < n:
            c = s[q]
            if c == '\n':
                found, q = line_candidate(q, column)
                if found is not None:
                    return found
                in_string = escaped = False
                continue
            if in_string:
                if escaped: escaped = False
                elif c == '\\': escaped = True
                elif c == '"': in_string = False
            elif c == '"': in_string = True
            elif c in '{[': depth += 1
            elif c in '}]':
                if depth > 0: depth -= 1
                elif c == ']': return q
            elif c == ',' and depth == 0:
                return q
            q += 1
        return n

    def broken(start, at):
        # A value broken at `at`: resume on that line if `at` opens it, else on the next; inside
        # a top-level array, at the element's own ',' or ']' as well.
        out.append(None)
        column = start - line_start(start)
        if at >= n:
            return n
        if in_array:
            depth = open_depth(start, at)
            if s[at] == '\n' or opens_line(at):
                found, q = line_candidate(at, column)
                return found if found is not None else skip_element(q, depth, column)
            return skip_element(at, depth, column)
        if s[at] == '\n':
            return resume(at + 1, column)
        if opens_line(at):
            return resume(at, column)
        return resume(next_line(at), column)

    def garbage(start):
        out.append(None)
        return resume(next_line(start), float('inf'))

    while True:
        while pos < n and s[pos] in WS:
            pos += 1
        if pos >= n:
            break
        c = s[pos]
        if in_array:
            if c == ',':
                pos += 1
                continue
            if c == ']':
                in_array = False
                pos += 1
                continue
        elif c == '[':
            in_array = True
            pos += 1
            continue
        if c in '{["':
            try:
                value, end = decoder.raw_decode(s, pos)
                failed_at = None
            except json.JSONDecodeError as error:
                end = None
                failed_at = n if error.msg.startswith('Unterminated string') else error.pos
            except RecursionError:
                end, failed_at = None, n
            deep = too_deep(pos, end if end is not None else failed_at)
            if deep is not None:
                pos = broken(pos, deep)
            elif end is None:
                pos = broken(pos, failed_at)
            else:
                out.append([pos, end])
                pos = end
        elif c in SCALAR_START:
            try:
                value, end = decoder.raw_decode(s, pos)
            except (json.JSONDecodeError, ValueError):
                end = None
            if end is not None and (end >= n or s[end] in DELIMITERS):
                out.append([pos, end])
                pos = end
            else:
                pos = garbage(pos)
        else:
            pos = garbage(pos)
    return out

with open(sys.argv[1], 'rb') as f:
    json.dump(split(f.read()), sys.stdout)
"""#
}
