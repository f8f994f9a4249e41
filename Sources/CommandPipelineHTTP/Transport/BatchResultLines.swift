import CommandPipeline
import CommandPipelineBatch
import Foundation

/// A provider's batch result file (JSON Lines), read the same way for every adapter: one line
/// never decides the fate of the others. A line that is not JSON, or not an object, fails the
/// request it names (its id is looked for in the raw bytes) or, naming none, is reported as
/// unreadable; a request answered by two lines is a failed result naming both lines, never the
/// last answer silently. Messages quote the server through `ServerText` (redacted, then cut).
struct BatchResultLines {
    /// The field that names the request (`custom_id`, or Gemini's `key`).
    let idField: String
    let jobID: String
    let provider: String
    let text: ServerText

    /// The results of `body`; `read` turns one parsed line into its result (nil: no usable id).
    func read(_ body: Data, startingLine: Int = 1, _ read: (JSONObject) -> BatchResult?) -> BatchResultSet {
        var results: [BatchResult] = []
        var unreadable: [String] = []
        var lineOf: [String: Int] = [:]
        var duplicates: [String: [Int]] = [:]
        var number = startingLine - 1
        for line in body.split(separator: 0x0a, omittingEmptySubsequences: false) {
            number += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x0d || $0 == 0x09 }) { continue }
            let bytes = [UInt8](line)
            var result: BatchResult?
            var problem: String?
            do throws(JSONParser.SyntaxError) {
                let value = try JSONParser.parse(bytes)
                if case .object(let object) = value {
                    result = read(object)
                    if result == nil { problem = "no usable \(idField)" }
                } else {
                    problem = "not a JSON object"
                }
            } catch {
                problem = "not JSON (\(error.message))"
            }
            if let problem {
                let what = "line \(number) of the result file of batch \(jobID) is \(problem.hasPrefix("no ") ? "without a usable \(idField)" : problem)"
                if result == nil, let id = Self.id(named: idField, in: bytes) {
                    result = BatchResult(id: id, outcome: .failure(APIError(
                        .providerError, "\(what): the answer to this request cannot be read: \(text.preview(String(decoding: bytes.prefix(4096), as: UTF8.self), limit: 120))",
                        provider: provider, code: "batch_result_malformed")))
                } else if result == nil {
                    unreadable.append("line \(number): \(problem)")
                    continue
                }
            }
            guard let result else { continue }
            if let first = lineOf[result.id] {
                duplicates[result.id, default: [first]].append(number)
            } else {
                lineOf[result.id] = number
                results.append(result)
            }
        }
        for (n, result) in results.enumerated() {
            guard let lines = duplicates[result.id] else { continue }
            results[n] = BatchResult(id: result.id, outcome: .failure(Self.duplicate(result.id, lines: lines.map { "line \($0)" }, job: jobID, provider: provider)))
        }
        return BatchResultSet(results: results, unreadable: unreadable)
    }

    /// A request answered more than once: neither answer is taken.
    static func duplicate(_ id: String, lines: [String], job: String, provider: String) -> APIError {
        APIError(
            .providerError, "batch \(job) answers request \(id) \(lines.count) times (\(lines.joined(separator: ", "))); no answer is taken, run the command again",
            provider: provider, retryable: true, code: "batch_result_duplicate")
    }

    /// The request a broken line names: `"<field>": "<id>"` in its raw bytes, when the id is valid.
    static func id(named field: String, in bytes: [UInt8]) -> String? {
        let needle = Array("\"\(field)\"".utf8)
        guard bytes.count > needle.count else { return nil }
        var i = 0
        while i + needle.count <= bytes.count {
            if bytes[i] == needle[0] && Array(bytes[i..<i + needle.count]) == needle {
                var j = i + needle.count
                while j < bytes.count && (bytes[j] == 0x20 || bytes[j] == 0x09) { j += 1 }
                guard j < bytes.count, bytes[j] == UInt8(ascii: ":") else { i += 1; continue }
                j += 1
                while j < bytes.count && (bytes[j] == 0x20 || bytes[j] == 0x09) { j += 1 }
                guard j < bytes.count, bytes[j] == UInt8(ascii: "\"") else { i += 1; continue }
                let start = j + 1
                guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                let id = String(decoding: bytes[start..<end], as: UTF8.self)
                return BatchRequest.isValidID(id) ? id : nil
            }
            i += 1
        }
        return nil
    }
}
