import CommandPipeline
import Foundation

/// `--sinks FILE`: result sinks described in JSON instead of `--sink` flags (seed 003 configures
/// its handlers from a file with environment variables):
///
///     {"sinks": [
///       {"kind": "postgres", "target": "postgresql://app@${PGHOST}:5432/runs", "priority": 10,
///        "batch_size": 1000, "timeout_seconds": 60,
///        "options": {"table": "results", "password_env": "RUNS_PG_PASSWORD", "max_buffer_mb": 256}},
///       {"kind": "jsonl", "target": "${HOME}/runs/results.jsonl"},
///       {"kind": "webhook", "target": "https://hooks.example.com/runs", "priority": 50, "batch_size": 20}
///     ]}
///
/// `kind` and `target` are required. `priority` as in `--sink @N`; `batch_size` is rows per
/// transaction (sqlite, postgres) or results per request (webhook), not for jsonl;
/// `timeout_seconds` replaces `--sink-timeout` for that sink; `options` holds what a kind takes
/// beyond its target (postgres: `table`, `sslmode`, `password_env`, `connect_timeout` — as in
/// its URL, but not in both — and `max_buffer_mb`; sqlite: `max_buffer_mb`).
///
/// Every string value may hold `${NAME}`, replaced by that environment variable (`$$` is a
/// plain `$`); an unset variable is an error naming it. Messages name the place in the file
/// (`sinks[0].target`) and never print an expanded value, so a secret put in through a
/// variable is never echoed. Parsing is strict like the model catalog's: an unknown key, a
/// wrong type, a duplicate key or a number out of range is an error that names where it is.
enum SinksFile {
    static let maxBytes = 1 << 20
    static let maxSinks = 64
    static let batchSizes = 1...10_000
    static let bufferMegabytes = 1...65_536
    static let entryKeys: Set<String> = ["kind", "target", "priority", "batch_size", "timeout_seconds", "options"]
    static let optionKeys: [SinkSpec.Kind: Set<String>] = [
        .postgres: ["table", "sslmode", "password_env", "connect_timeout", "max_buffer_mb"],
        .sqlite: ["max_buffer_mb"], .jsonl: [], .webhook: [],
    ]

    /// Reads and parses `path`; problems are usage errors naming the file and the place in it.
    static func load(_ path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(UsageError) -> [SinkSpec] {
        _ = try PathArgument.check(path, option: "--sinks", use: .read)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw UsageError(message: "option '--sinks': cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maxBytes + 1) ?? Data()
        } catch {
            throw UsageError(message: "option '--sinks': cannot read \(path): \(error.localizedDescription)")
        }
        guard data.count <= maxBytes else { throw UsageError(message: "option '--sinks': \(path) is larger than \(maxBytes >> 20) MiB") }
        do throws(Problem) {
            return try parse(Array(data), environment: environment)
        } catch {
            throw UsageError(message: "option '--sinks' \(path): \(error)", hint: "see 'pipeline --help' for the file's format")
        }
    }

    /// Where in the file, and what is wrong.
    struct Problem: Error, CustomStringConvertible {
        var path: String
        var message: String
        var description: String { path.isEmpty ? message : "\(path): \(message)" }
    }

    static func parse(_ bytes: [UInt8], environment: [String: String]) throws(Problem) -> [SinkSpec] {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes, options: .strict)
        } catch {
            throw Problem(path: error.path ?? "", message: "not valid JSON: \(error.message) at byte \(error.offset)")
        }
        guard case .object(let top) = root, top.keys == ["sinks"], case .array(let entries)? = top["sinks"] else {
            throw Problem(path: "", message: #"a sinks file is an object with "sinks": [{"kind": …, "target": …}, …] and nothing else"#)
        }
        guard (1...maxSinks).contains(entries.count) else { throw Problem(path: "sinks", message: "list 1 to \(maxSinks) sinks, got \(entries.count)") }
        var specs: [SinkSpec] = []
        for (i, entry) in entries.enumerated() {
            specs.append(try sink(entry, at: "sinks[\(i)]", environment: environment))
        }
        return specs
    }

    private static func sink(_ value: JSONValue, at path: String, environment: [String: String]) throws(Problem) -> SinkSpec {
        guard case .object(let fields) = value else { throw Problem(path: path, message: "expected an object, got \(value.typeName)") }
        for key in fields.keys where !entryKeys.contains(key) {
            throw Problem(path: "\(path).\(printable(key))", message: "unknown key; known: \(entryKeys.sorted().joined(separator: ", "))")
        }
        guard let kindValue = fields["kind"] else { throw Problem(path: path, message: "\"kind\" is required (\(kinds))") }
        guard case .string(let kindName) = kindValue, let kind = SinkSpec.Kind(rawValue: kindName) else {
            throw Problem(path: path + ".kind", message: "expected one of \(kinds)")
        }
        guard let targetValue = fields["target"] else { throw Problem(path: path, message: "\"target\" is required (a file path, URL or database URL)") }
        var expanded: [String] = []
        let target = try expand(try string(targetValue, at: path + ".target"), at: path + ".target", environment: environment, values: &expanded)
        guard !target.isEmpty else { throw Problem(path: path + ".target", message: "is empty") }
        var spec = SinkSpec(kind: kind, target: target, priority: SinkSpec.defaultPriority)
        spec.origin = "--sinks \(path)"
        if let v = fields["priority"] { spec.priority = try integer(v, in: FlagLimits.sinkPriority, at: path + ".priority") }
        if let v = fields["batch_size"] {
            guard kind != .jsonl else { throw Problem(path: path + ".batch_size", message: "a jsonl sink writes each line as it comes; batch_size does not apply") }
            spec.batchSize = try integer(v, in: batchSizes, at: path + ".batch_size")
        }
        if let v = fields["timeout_seconds"] {
            guard let seconds = v.doubleValue, seconds.isFinite, FlagLimits.seconds.contains(seconds) else {
                throw Problem(path: path + ".timeout_seconds", message: "expected a number of seconds from 0.001 to \(Int(FlagLimits.seconds.upperBound)), got \(describe(v))")
            }
            spec.timeoutSeconds = seconds
        }
        if let v = fields["options"] {
            guard case .object(let options) = v else { throw Problem(path: path + ".options", message: "expected an object, got \(v.typeName)") }
            let allowed = optionKeys[kind] ?? []
            for (key, option) in options {
                let at = "\(path).options.\(printable(key))"
                guard allowed.contains(key) else {
                    throw Problem(path: at, message: allowed.isEmpty ? "a \(kind.rawValue) sink takes no options" : "unknown option; known for \(kind.rawValue): \(allowed.sorted().joined(separator: ", "))")
                }
                switch option {
                case .string(let text): spec.options[key] = try expand(text, at: at, environment: environment, values: &expanded)
                case .int(let n): spec.options[key] = String(n)
                default: throw Problem(path: at, message: "expected a string or a whole number, got \(option.typeName)")
                }
            }
        }
        spec.expandedValues = expanded
        return spec
    }

    /// `${NAME}` replaced from `environment`; `$$` is `$`. A `$` followed by anything else is
    /// kept as it is. Each value put in is added to `values`, so messages can leave it out.
    static func expand(_ text: String, at path: String, environment: [String: String], values: inout [String]) throws(Problem) -> String {
        guard text.contains("$") else { return text }
        var out = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            out += rest[..<dollar]
            let after = rest[rest.index(after: dollar)...]
            if after.hasPrefix("$") {
                out += "$"
                rest = after.dropFirst()
            } else if after.hasPrefix("{") {
                guard let close = after.firstIndex(of: "}") else { throw Problem(path: path, message: "'${' without a closing '}'") }
                let name = String(after[after.index(after: after.startIndex)..<close])
                guard isVariableName(name) else {
                    throw Problem(path: path, message: "'${\(printable(name))}' is not a variable name (letters, digits and _, not starting with a digit)")
                }
                guard let value = environment[name] else { throw Problem(path: path, message: "environment variable '\(name)' is not set") }
                out += value
                values.append(value)
                rest = after[after.index(after: close)...]
            } else {
                out += "$"
                rest = after
            }
        }
        return out + rest
    }

    private static var kinds: String { SinkSpec.Kind.allCases.map(\.rawValue).joined(separator: ", ") }

    private static func string(_ value: JSONValue, at path: String) throws(Problem) -> String {
        guard case .string(let s) = value else { throw Problem(path: path, message: "expected a string, got \(value.typeName)") }
        return s
    }

    private static func integer(_ value: JSONValue, in range: ClosedRange<Int>, at path: String) throws(Problem) -> Int {
        guard case .int(let n) = value, range.contains(n) else {
            throw Problem(path: path, message: "expected a whole number from \(range.lowerBound) to \(range.upperBound), got \(describe(value))")
        }
        return n
    }

    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .int(let n): String(n)
        case .double(let d): String(d)
        default: value.typeName
        }
    }

    private static func printable(_ text: String) -> String { StandardError.oneLine(String(text.prefix(100))) }

    /// Letters, digits and `_`, not starting with a digit.
    static func isVariableName(_ text: String) -> Bool {
        guard let first = text.utf8.first, !(0x30...0x39).contains(first), text.utf8.count <= 255 else { return false }
        return text.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }
    }
}
