import Foundation

/// What a call's `config.response_format` asks the answer to be, as the engine checks it:
/// `{"type":"json_object"}` one JSON object; `{"type":"json_schema","json_schema":{"schema":…}}`
/// a JSON value that conforms to the schema (`JSONSchema`). Any other format (`text`, none) is
/// not checked.
package enum OutputFormat: Sendable, Hashable {
    case jsonObject
    case jsonSchema(JSONSchema)

    /// Answers nesting deeper than this fail validation (the validator recurses per level).
    public static let maximumAnswerDepth = 64
    /// Answers longer than this (UTF-8 bytes) fail validation without being parsed.
    public static let maximumAnswerBytes = 8 * 1024 * 1024

    /// The format `responseFormat` asks for; nil when the engine checks nothing. A malformed
    /// `json_schema` format, or a schema outside the subset, is an `invalid_command` at `path`
    /// (the call's `….config.response_format`) and below.
    public static func of(_ responseFormat: JSONValue?, path: String) throws(APIError) -> OutputFormat? {
        guard case .object(let format)? = responseFormat, let type = format["type"]?.stringValue else { return nil }
        switch type {
        case "json_object":
            return .jsonObject
        case "json_schema":
            guard case .object(let wrapper)? = format["json_schema"] else {
                throw APIError(.invalidCommand, "a json_schema response_format needs a json_schema object with a schema: {\"type\":\"json_schema\",\"json_schema\":{\"name\":…,\"schema\":{…}}}", path: "\(path).json_schema")
            }
            guard let schema = wrapper["schema"], schema.objectValue != nil || schema.boolValue != nil else {
                throw APIError(.invalidCommand, "json_schema.schema must be a schema object, e.g. {\"type\":\"object\",\"properties\":{…}}", path: "\(path).json_schema.schema")
            }
            return .jsonSchema(try JSONSchema(schema, path: "\(path).json_schema.schema"))
        default:
            return nil
        }
    }

    /// The answer parsed and checked: its value, or the first violation (path `$` for an answer
    /// that is not JSON at all).
    ///
    /// Parsing decodes escapes (`\u002d` is `-`), so a secret the provider's redaction of the raw
    /// text could not see may appear in the value: every string of the value (keys and values) is
    /// redacted with `redactor` first, and the redacted value is the one validated and returned,
    /// so a violation's path and message (built from it, cut after) carry no secret either.
    public func check(_ text: String, redactor: SecretRedactor = .none) -> Result<JSONValue, JSONSchema.Violation> {
        switch checkUnredacted(text, redactor: redactor) {
        case .success(let value): return .success(value)
        case .failure(let v): return .failure(JSONSchema.Violation(path: redactor.redact(v.path), message: redactor.redact(v.message)))
        }
    }

    private func checkUnredacted(_ text: String, redactor: SecretRedactor) -> Result<JSONValue, JSONSchema.Violation> {
        guard text.utf8.count <= Self.maximumAnswerBytes else {
            return .failure(JSONSchema.Violation(path: "$", message: "expected a JSON answer of at most \(Self.maximumAnswerBytes) bytes, found \(text.utf8.count)"))
        }
        var value: JSONValue
        do {
            value = try JSONParser.parse(Self.unfenced(text))
        } catch {
            return .failure(JSONSchema.Violation(path: "$", message: "expected the answer to be JSON, but it does not parse: \(error.message) at byte \(error.offset)"))
        }
        if redactor.isActive { value = redactor.redact(value) }
        if Self.depth(of: value) > Self.maximumAnswerDepth {
            return .failure(JSONSchema.Violation(path: "$", message: "expected JSON nesting at most \(Self.maximumAnswerDepth) levels deep"))
        }
        switch self {
        case .jsonObject:
            guard case .object = value else { return .failure(JSONSchema.Violation(path: "$", message: "expected one JSON object, found \(value.typeName)")) }
            return .success(value)
        case .jsonSchema(let schema):
            if let violation = schema.validate(value) { return .failure(violation) }
            return .success(value)
        }
    }

    /// The answer without surrounding white space and one Markdown code fence (```json … ```),
    /// which models add around JSON even when asked not to.
    static func unfenced(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("```"), trimmed.hasSuffix("```"), trimmed.count >= 6 else { return trimmed }
        var body = trimmed.dropFirst(3).dropLast(3)
        if let newline = body.firstIndex(of: "\n") { body = body[body.index(after: newline)...] }
        return String(body)
    }

    /// How deep `value` nests (a scalar is 0), without recursion.
    static func depth(of value: JSONValue) -> Int {
        var deepest = 0
        var stack: [(JSONValue, Int)] = [(value, 0)]
        while let (v, d) = stack.popLast() {
            deepest = max(deepest, d)
            if d > maximumAnswerDepth { return d }
            switch v {
            case .array(let items): for item in items { stack.append((item, d + 1)) }
            case .object(let object): for member in object { stack.append((member.value, d + 1)) }
            default: break
            }
        }
        return deepest
    }
}

extension SecretRedactor {
    /// `value` with every string in it, object keys included, redacted (`redact(_:)`), without
    /// recursion (an answer's depth is only checked later).
    public func redact(_ value: JSONValue) -> JSONValue {
        guard isActive else { return value }
        switch value {
        case .string(let s): return .string(redact(s))
        case .array, .object: break
        default: return value
        }
        // Post-order over an explicit stack: each container is rebuilt from its redacted children.
        enum Frame { case visit(JSONValue), array(Int), object([String]) }
        var work: [Frame] = [.visit(value)]
        var done: [JSONValue] = []
        while let frame = work.popLast() {
            switch frame {
            case .visit(.string(let s)): done.append(.string(redact(s)))
            case .visit(.array(let items)):
                work.append(.array(items.count))
                for item in items.reversed() { work.append(.visit(item)) }
            case .visit(.object(let object)):
                work.append(.object(object.keys))
                for member in object.members.reversed() { work.append(.visit(member.value)) }
            case .visit(let scalar): done.append(scalar)
            case .array(let n):
                let items = Array(done.suffix(n))
                done.removeLast(n)
                done.append(.array(items))
            case .object(let keys):
                let values = Array(done.suffix(keys.count))
                done.removeLast(keys.count)
                done.append(.object(JSONObject(zip(keys, values).map { (key: redact($0), value: $1) })))
            }
        }
        return done.last ?? value
    }
}
