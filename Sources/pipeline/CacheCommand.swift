import CommandPipeline
import CommandPipelineSQLite
import Foundation

/// `pipeline cache stats PATH` and `pipeline cache prune PATH [--older-than S] [--max-mb N]`: a
/// response cache file (`--response-cache`) looked at or trimmed, beside any run using it. Each
/// prints one JSON object on stdout.
struct CacheInvocation {
    enum Action: String {
        case stats, prune
    }

    var action: Action
    var path: String
    var olderThanSeconds: Int?
    var maxMB: Int?

    static let usage = "pipeline cache stats PATH | pipeline cache prune PATH [--older-than SECONDS] [--max-mb N]"

    static func parse(_ arguments: ArraySlice<String>) throws(UsageError) -> CacheInvocation {
        var rest = arguments
        guard let word = rest.popFirst() else { throw UsageError(message: "'cache' needs an action: stats or prune", hint: usage) }
        guard let action = Action(rawValue: word) else {
            throw UsageError(message: "unknown cache action '\(word)'; use stats or prune", hint: ArgumentParser.suggestion(word, among: ["stats", "prune"]))
        }
        var path: String?
        var invocation = CacheInvocation(action: action, path: "")
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--") else {
                guard path == nil else { throw UsageError(message: "'cache \(word)' takes one cache file, got '\(path!)' and '\(argument)'") }
                path = argument
                continue
            }
            var name = argument
            var value: String?
            if let eq = argument.firstIndex(of: "=") {
                name = String(argument[..<eq])
                value = String(argument[argument.index(after: eq)...])
            }
            let known = action == .prune ? ["--older-than", "--max-mb"] : []
            guard known.contains(name) else {
                throw UsageError(message: "unknown option '\(name)' for 'cache \(word)'", hint: known.isEmpty ? usage : ArgumentParser.suggestion(name, among: known))
            }
            if value == nil { value = rest.popFirst() }
            guard let value else { throw UsageError(message: "option '\(name)' needs a value") }
            if name == "--older-than" {
                invocation.olderThanSeconds = try ArgumentParser.integer(name, value, in: FlagLimits.responseCacheSeconds)
            } else {
                invocation.maxMB = try ArgumentParser.integer(name, value, in: FlagLimits.responseCacheMB)
            }
        }
        guard let path, !path.isEmpty else { throw UsageError(message: "'cache \(word)' needs the cache file", hint: usage) }
        invocation.path = path
        return invocation
    }
}

enum CacheCommand {
    static func main(_ invocation: CacheInvocation) -> Int32 {
        // The path rule (PathArgument): a directory, FIFO or device is refused before anything is opened.
        do throws(UsageError) { _ = try PathArgument.check(invocation.path, option: "cache \(invocation.action.rawValue)", use: .read) } catch {
            return Pipeline.usageFailure(error)
        }
        do throws(SQLiteResponseCache.OpenError) {
            switch invocation.action {
            case .stats:
                let statistics = try SQLiteResponseCache.statistics(path: invocation.path)
                return Pipeline.printed(JSONSerializer.serialize(record(statistics, path: invocation.path)) + "\n")
            case .prune:
                let (removed, remaining) = try SQLiteResponseCache.prune(
                    path: invocation.path, olderThan: invocation.olderThanSeconds.map { .seconds($0) }, maxBytes: invocation.maxMB.map { $0 << 20 })
                var object = record(remaining, path: invocation.path).objectValue ?? [:]
                object["removed"] = .int(removed)
                return Pipeline.printed(JSONSerializer.serialize(.object(object)) + "\n")
            }
        } catch {
            return Pipeline.usageFailure(UsageError(message: "'cache \(invocation.action.rawValue)': \(error.message)"))
        }
    }

    static func record(_ s: SQLiteResponseCache.Statistics, path: String) -> JSONValue {
        func time(_ date: Date?) -> JSONValue { date.map { .string(isoTime($0)) } ?? .null }
        return [
            "path": .string(path), "entries": .int(s.entries), "bytes": .int(s.bytes), "file_bytes": .int(s.fileBytes), "hits": .int(s.hits),
            "oldest": time(s.oldest), "newest": time(s.newest),
        ]
    }

    /// UTC, to the millisecond: `2026-12-06T23:59:01.250Z`.
    static func isoTime(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
