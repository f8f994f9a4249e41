import Foundation

/// A JSON Schema of the subset structured output uses (`Design/structured-output.md`):
/// `type` (a name or a list), `properties`, `required`, `additionalProperties`, `items`,
/// `prefixItems`, `enum`, `const`, `anyOf`/`oneOf`/`allOf`, local `$ref` with `$defs`
/// (or `definitions`), numeric bounds, length bounds, `pattern`. Annotations (`title`,
/// `description`, `default`, `examples`, `$schema`, `$id`, `$comment`, `format`) are accepted and
/// ignored. Any other keyword is refused when the schema is made (`init(_:path:)`), naming its path.
///
/// Hostile input is bounded: a schema nests at most `maximumDepth` levels and holds at most
/// `maximumNodes` subschemas; a validation follows at most `maximumRefDepth` nested `$ref`s and
/// spends at most `maximumSteps` steps (else the answer fails with a message saying so), a
/// tested string charging its length and an `enum` its size; a `pattern` is within the subset
/// `SchemaPattern` accepts (no nested repetition, backreferences or lookaround), compiled once
/// when the schema is made, and matched against at most `maximumPatternInput` UTF-16 units.
package struct JSONSchema: Sendable, Hashable {
    public let root: JSONValue
    /// The schema's patterns, compiled when it was checked (a schema taken unchecked compiles
    /// them per validation).
    let patterns: CompiledPatterns

    public static func == (a: JSONSchema, b: JSONSchema) -> Bool { a.root == b.root }
    public func hash(into hasher: inout Hasher) { hasher.combine(root) }

    public static let maximumDepth = 64
    public static let maximumNodes = 10_000
    public static let maximumRefDepth = 64
    public static let maximumSteps = 1_000_000
    public static let maximumPatternInput = 65_536
    public static let maximumPatternLength = 1_000

    static let annotations: Set<String> = ["title", "description", "default", "examples", "$schema", "$id", "$comment", "format"]
    static let keywords: Set<String> = [
        "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const", "anyOf", "oneOf", "allOf",
        "$ref", "$defs", "definitions", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
        "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "pattern",
    ]
    static let typeNames: Set<String> = ["null", "boolean", "object", "array", "number", "integer", "string"]

    /// A first violation: where in the answer (`$.items[0].name`) and what was expected there.
    package struct Violation: Error, Sendable, Hashable {
        public var path: String
        public var message: String
        public init(path: String, message: String) {
            self.path = path
            self.message = message
        }
    }

    /// Checks `schema` against the subset; an unsupported keyword, a malformed value or a `$ref`
    /// that does not resolve is an `invalid_command` at `path` + the keyword's own path.
    public init(_ schema: JSONValue, path: String) throws(APIError) {
        root = schema
        var nodes = 0
        var compiled: [String: NSRegularExpression] = [:]
        try Self.check(schema, root: schema, path: path, depth: 0, nodes: &nodes, patterns: &compiled)
        patterns = CompiledPatterns(compiled)
    }

    // MARK: - Checking the schema

    private static func fail(_ path: String, _ message: String) -> APIError {
        APIError(.invalidCommand, "\(message) (the structured-output schema subset: see Design/structured-output.md)", path: path)
    }

    private static func check(
        _ schema: JSONValue, root: JSONValue, path: String, depth: Int, nodes: inout Int, patterns: inout [String: NSRegularExpression]
    ) throws(APIError) {
        nodes += 1
        if nodes > maximumNodes { throw fail(path, "the schema has more than \(maximumNodes) subschemas") }
        if depth > maximumDepth { throw fail(path, "the schema nests deeper than \(maximumDepth) levels") }
        if case .bool = schema { return }
        guard case .object(let object) = schema else { throw fail(path, "a schema must be an object or a boolean, found \(schema.typeName)") }
        for (key, value) in object {
            let here = "\(path).\(key)"
            if annotations.contains(key) { continue }
            guard keywords.contains(key) else {
                throw fail(here, "unsupported schema keyword '\(key)': remove it, or express it with the supported keywords")
            }
            switch key {
            case "type":
                let names: [JSONValue]
                if case .array(let list) = value { names = list } else { names = [value] }
                if names.isEmpty { throw fail(here, "type must name at least one type") }
                for name in names {
                    guard let s = name.stringValue, typeNames.contains(s) else {
                        throw fail(here, "type must be one of \(typeNames.sorted().joined(separator: ", ")) (or a list of them), found \(JSONSerializer.serialize(name))")
                    }
                }
            case "properties", "$defs", "definitions":
                guard case .object(let members) = value else { throw fail(here, "\(key) must be an object of schemas, found \(value.typeName)") }
                for (name, sub) in members { try check(sub, root: root, path: "\(here).\(name)", depth: depth + 1, nodes: &nodes, patterns: &patterns) }
            case "required":
                guard case .array(let names) = value, names.allSatisfy({ $0.stringValue != nil }) else { throw fail(here, "required must be an array of property names") }
            case "additionalProperties", "items":
                try check(value, root: root, path: here, depth: depth + 1, nodes: &nodes, patterns: &patterns)
            case "prefixItems", "anyOf", "oneOf", "allOf":
                guard case .array(let list) = value, !list.isEmpty else { throw fail(here, "\(key) must be a non-empty array of schemas") }
                for (i, sub) in list.enumerated() { try check(sub, root: root, path: "\(here)[\(i)]", depth: depth + 1, nodes: &nodes, patterns: &patterns) }
            case "enum":
                guard case .array(let list) = value, !list.isEmpty else { throw fail(here, "enum must be a non-empty array") }
            case "const":
                break
            case "$ref":
                guard let ref = value.stringValue else { throw fail(here, "$ref must be a string") }
                // Only to the root or a definition, whose contents are checked as the schema's own.
                guard isDefinitionReference(ref) else {
                    throw fail(here, "$ref '\(ref)' is not supported: only local references to the root or to a definition ('#', '#/$defs/name', '#/definitions/name') are")
                }
                guard let target = resolve(ref, in: root) else {
                    throw fail(here, "$ref '\(ref)' does not resolve: only local references ('#', '#/$defs/name') are supported")
                }
                // A chain of references that never reaches a schema of its own loops forever.
                var seen: Set<String> = [ref]
                var current = target
                while case .object(let o) = current, let next = o["$ref"]?.stringValue {
                    if !seen.insert(next).inserted { throw fail(here, "$ref '\(ref)' is a cycle of references that never reaches a schema") }
                    guard let resolved = resolve(next, in: root) else { break }
                    current = resolved
                }
            case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
                guard let d = value.doubleValue, d.isFinite else { throw fail(here, "\(key) must be a number") }
            case "multipleOf":
                guard let d = value.doubleValue, d.isFinite, d > 0 else { throw fail(here, "multipleOf must be a number above 0") }
            case "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties":
                guard let n = value.intValue, n >= 0, n <= Int(Int32.max) else { throw fail(here, "\(key) must be a whole number from 0 to \(Int32.max)") }
            case "pattern":
                guard let p = value.stringValue else { throw fail(here, "pattern must be a string") }
                guard p.utf16.count <= maximumPatternLength else { throw fail(here, "pattern is longer than \(maximumPatternLength) characters") }
                if let problem = SchemaPattern.problem(p) { throw fail(here, "\(problem): '\(p)'") }
                if patterns[p] == nil {
                    guard let regex = try? NSRegularExpression(pattern: p) else { throw fail(here, "pattern '\(p)' is not a valid regular expression") }
                    patterns[p] = regex
                }
            default:
                break
            }
        }
    }

    /// Whether `ref` is `#` or names one definition at the root: `#/$defs/name`, `#/definitions/name`.
    static func isDefinitionReference(_ ref: String) -> Bool {
        if ref == "#" { return true }
        for prefix in ["#/$defs/", "#/definitions/"] where ref.hasPrefix(prefix) {
            let name = ref.dropFirst(prefix.count)
            return !name.isEmpty && !name.contains("/")
        }
        return false
    }

    /// The schema at a local reference: `#`, or `#/` and a JSON pointer (`~0` `~`, `~1` `/`).
    static func resolve(_ ref: String, in root: JSONValue) -> JSONValue? {
        guard ref.hasPrefix("#") else { return nil }
        let pointer = ref.dropFirst()
        if pointer.isEmpty { return root }
        guard pointer.hasPrefix("/") else { return nil }
        var current = root
        for raw in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            let token = String(raw).replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            switch current {
            case .object(let o):
                guard let next = o[token] else { return nil }
                current = next
            case .array(let a):
                guard let i = Int(token), a.indices.contains(i) else { return nil }
                current = a[i]
            default:
                return nil
            }
        }
        return current
    }

    // MARK: - Validating an instance

    /// The first place `instance` breaks the schema, or nil when it conforms.
    public func validate(_ instance: JSONValue) -> Violation? { validate(instance, against: root) }

    /// A schema taken as it is (already checked, or the mock's own use).
    init(unchecked root: JSONValue) {
        self.root = root
        patterns = .none
    }

    /// The first place `instance` breaks `schema`, a part of this one, spending at most `maxSteps`.
    func validate(_ instance: JSONValue, against schema: JSONValue, maxSteps: Int = JSONSchema.maximumSteps) -> Violation? {
        validateCounting(instance, against: schema, maxSteps: maxSteps).violation
    }

    /// `validate(_:against:maxSteps:)` and the steps it spent.
    func validateCounting(_ instance: JSONValue, against schema: JSONValue, maxSteps: Int) -> (violation: Violation?, steps: Int) {
        var run = Run(root: root, maxSteps: maxSteps, compiled: patterns.regexes)
        let violation = run.validate(instance, against: schema, path: "$", refDepth: 0)
        return (run.exhausted ?? violation, run.steps)
    }

    private struct Run {
        let root: JSONValue
        let maxSteps: Int
        /// The schema's compiled patterns, and those compiled during this run (unchecked schemas).
        var compiled: [String: NSRegularExpression]
        /// References resolved so far (a recursive schema follows the same few many times).
        var targets: [String: JSONValue] = [:]
        var steps = 0
        /// Set once the steps run out: the answer fails with it, whatever the branches said.
        var exhausted: Violation?

        mutating func validate(_ instance: JSONValue, against schema: JSONValue, path: String, refDepth: Int) -> Violation? {
            if let spent = charge(1, path: path) { return spent }
            switch schema {
            case .bool(let allowed): return allowed ? nil : Violation(path: path, message: "expected nothing here (the schema is false)")
            case .object(let s): return validate(instance, s, path: path, refDepth: refDepth)
            default: return nil
            }
        }

        /// Spends `n` steps; the violation once they run out.
        mutating func charge(_ n: Int, path: String) -> Violation? {
            if let exhausted { return exhausted }
            steps = steps.addingSaturating(Swift.max(0, n))
            if steps > maxSteps {
                exhausted = Violation(path: path, message: "validation took more than \(maxSteps) steps: the schema is too complex for this answer")
                return exhausted
            }
            return nil
        }

        private mutating func validate(_ instance: JSONValue, _ s: JSONObject, path: String, refDepth: Int) -> Violation? {
            if let ref = s["$ref"]?.stringValue {
                guard refDepth < JSONSchema.maximumRefDepth else {
                    return Violation(path: path, message: "the schema's references nest deeper than \(JSONSchema.maximumRefDepth) levels here")
                }
                var target = targets[ref]
                if target == nil, let found = JSONSchema.resolve(ref, in: root) {
                    targets[ref] = found
                    target = found
                }
                if let target, let v = validate(instance, against: target, path: path, refDepth: refDepth + 1) { return v }
            }
            if let type = s["type"] {
                let names = type.arrayValue?.compactMap(\.stringValue) ?? [type.stringValue ?? ""]
                if !names.contains(where: { Self.has(instance, type: $0) }) {
                    let expected = names.count == 1 ? Self.article(names[0]) : "one of " + names.joined(separator: ", ")
                    return Violation(path: path, message: "expected \(expected), found \(Self.describe(instance))")
                }
            }
            if let c = s["const"], !Self.equal(instance, c) {
                return Violation(path: path, message: "expected exactly \(Self.short(c)), found \(Self.short(instance))")
            }
            if let options = s["enum"]?.arrayValue, let spent = charge(options.count, path: path) { return spent }
            if let options = s["enum"]?.arrayValue, !options.contains(where: { Self.equal(instance, $0) }) {
                return Violation(path: path, message: "expected one of \(Self.short(.array(options))), found \(Self.short(instance))")
            }
            switch instance {
            case .int, .double:
                if let v = number(instance, s, path: path) { return v }
            case .string(let string):
                if let v = self.string(string, s, path: path) { return v }
            case .array(let items):
                if let v = array(items, s, path: path, refDepth: refDepth) { return v }
            case .object(let object):
                if let v = self.object(object, s, path: path, refDepth: refDepth) { return v }
            default:
                break
            }
            if let all = s["allOf"]?.arrayValue {
                for sub in all { if let v = validate(instance, against: sub, path: path, refDepth: refDepth) { return v } }
            }
            if let any = s["anyOf"]?.arrayValue {
                var first: Violation?
                var matched = false
                for sub in any {
                    let v = validate(instance, against: sub, path: path, refDepth: refDepth)
                    if v == nil { matched = true; break }
                    if first == nil { first = v }
                }
                if !matched, let first {
                    return Violation(path: first.path, message: Self.nested("expected a value matching one of anyOf's \(any.count) schemas", first))
                }
            }
            if let one = s["oneOf"]?.arrayValue {
                var matches = 0
                var first: Violation?
                for sub in one {
                    let v = validate(instance, against: sub, path: path, refDepth: refDepth)
                    if v == nil { matches += 1 } else if first == nil { first = v }
                }
                if matches == 0, let first {
                    return Violation(path: first.path, message: Self.nested("expected a value matching exactly one of oneOf's \(one.count) schemas", first))
                }
                if matches > 1 { return Violation(path: path, message: "expected a value matching exactly one of oneOf's \(one.count) schemas, it matches \(matches)") }
            }
            return nil
        }

        private func number(_ instance: JSONValue, _ s: JSONObject, path: String) -> Violation? {
            guard let x = instance.doubleValue else { return nil }
            let shown = Self.short(instance)
            if let m = s["minimum"]?.doubleValue, x < m { return Violation(path: path, message: "expected a number ≥ \(Self.short(s["minimum"]!)), found \(shown)") }
            if let m = s["maximum"]?.doubleValue, x > m { return Violation(path: path, message: "expected a number ≤ \(Self.short(s["maximum"]!)), found \(shown)") }
            if let m = s["exclusiveMinimum"]?.doubleValue, x <= m { return Violation(path: path, message: "expected a number > \(Self.short(s["exclusiveMinimum"]!)), found \(shown)") }
            if let m = s["exclusiveMaximum"]?.doubleValue, x >= m { return Violation(path: path, message: "expected a number < \(Self.short(s["exclusiveMaximum"]!)), found \(shown)") }
            if let step = s["multipleOf"] {
                let isMultiple: Bool
                if case .int(let i) = instance, case .int(let m) = step, m > 0 {
                    isMultiple = i % m == 0
                } else if let m = step.doubleValue, m > 0 {
                    let q = x / m
                    isMultiple = q.isFinite && abs(q - q.rounded()) <= 1e-9 * max(1, abs(q))
                } else {
                    isMultiple = true
                }
                if !isMultiple { return Violation(path: path, message: "expected a multiple of \(Self.short(step)), found \(shown)") }
            }
            return nil
        }

        private mutating func string(_ string: String, _ s: JSONObject, path: String) -> Violation? {
            let minLength = s["minLength"]?.intValue, maxLength = s["maxLength"]?.intValue
            if minLength != nil || maxLength != nil {
                let count = string.unicodeScalars.count
                if let m = minLength, count < m { return Violation(path: path, message: "expected a string of at least \(m) characters, found \(count)") }
                if let m = maxLength, count > m { return Violation(path: path, message: "expected a string of at most \(m) characters, found \(count)") }
            }
            if let pattern = s["pattern"]?.stringValue {
                let length = string.utf16.count
                guard length <= JSONSchema.maximumPatternInput else {
                    return Violation(path: path, message: "expected a string matching \(pattern) of at most \(JSONSchema.maximumPatternInput) characters to test, found \(length)")
                }
                if let spent = charge(length, path: path) { return spent }
                var regex = compiled[pattern]
                if regex == nil, SchemaPattern.problem(pattern) == nil, let made = try? NSRegularExpression(pattern: pattern) {
                    compiled[pattern] = made
                    regex = made
                }
                guard let regex, regex.firstMatch(in: string, range: NSRange(location: 0, length: length)) != nil
                else { return Violation(path: path, message: "expected a string matching the pattern \(pattern)") }
            }
            return nil
        }

        private mutating func array(_ items: [JSONValue], _ s: JSONObject, path: String, refDepth: Int) -> Violation? {
            if let m = s["minItems"]?.intValue, items.count < m { return Violation(path: path, message: "expected at least \(m) items, found \(items.count)") }
            if let m = s["maxItems"]?.intValue, items.count > m { return Violation(path: path, message: "expected at most \(m) items, found \(items.count)") }
            let prefix = s["prefixItems"]?.arrayValue ?? []
            for (i, item) in items.enumerated() {
                let schema: JSONValue? = i < prefix.count ? prefix[i] : s["items"]
                if let schema, let v = validate(item, against: schema, path: "\(path)[\(i)]", refDepth: refDepth) { return v }
            }
            return nil
        }

        private mutating func object(_ object: JSONObject, _ s: JSONObject, path: String, refDepth: Int) -> Violation? {
            if let m = s["minProperties"]?.intValue, object.count < m { return Violation(path: path, message: "expected at least \(m) properties, found \(object.count)") }
            if let m = s["maxProperties"]?.intValue, object.count > m { return Violation(path: path, message: "expected at most \(m) properties, found \(object.count)") }
            if let required = s["required"]?.arrayValue {
                for name in required.compactMap(\.stringValue) where object[name] == nil {
                    return Violation(path: path, message: "expected the required property '\(name)', which is missing")
                }
            }
            let properties = s["properties"]?.objectValue
            for (key, value) in object {
                let here = Self.member(path, key)
                if let sub = properties?[key] {
                    if let v = validate(value, against: sub, path: here, refDepth: refDepth) { return v }
                } else if let extra = s["additionalProperties"] {
                    if case .bool(false) = extra { return Violation(path: here, message: "expected no property '\(key)': additionalProperties is false") }
                    if let v = validate(value, against: extra, path: here, refDepth: refDepth) { return v }
                }
            }
            return nil
        }

        /// `what` and the first branch's own complaint, once (nested combinators keep the innermost).
        static func nested(_ what: String, _ inner: Violation) -> String {
            guard let range = inner.message.range(of: "; the first says: ") else { return "\(what); the first says: \(inner.message)" }
            return "\(what); the first says: \(inner.message[range.upperBound...])"
        }

        static func member(_ path: String, _ key: String) -> String {
            let plain = !key.isEmpty && key.unicodeScalars.allSatisfy { ($0.properties.isAlphabetic && $0.isASCII) || ("0"..."9").contains($0) || $0 == "_" }
            return plain ? "\(path).\(key)" : "\(path)[\(JSONSerializer.serialize(.string(key)))]"
        }

        static func has(_ value: JSONValue, type: String) -> Bool {
            switch (type, value) {
            case ("null", .null), ("boolean", .bool), ("object", .object), ("array", .array), ("string", .string), ("number", .int), ("number", .double),
                ("integer", .int):
                true
            case ("integer", .double(let d)): d.isFinite && d.rounded() == d
            default: false
            }
        }

        static func article(_ type: String) -> String {
            switch type {
            case "null": "null"
            case "integer", "object", "array": "an \(type)"
            default: "a \(type)"
            }
        }

        static func describe(_ value: JSONValue) -> String {
            switch value {
            case .int: "an integer"
            case .double(let d): d.rounded() == d ? "an integer" : "a number"
            default: article(value.typeName)
            }
        }

        /// A value for a message: at most 80 characters of its JSON.
        static func short(_ value: JSONValue) -> String {
            let text = JSONSerializer.serialize(value)
            return text.count <= 80 ? text : String(text.prefix(77)) + "…"
        }

        /// JSON equality: numbers by value (`1` equals `1.0`), objects whatever their key order.
        static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
            switch (a, b) {
            case (.int(let x), .int(let y)): return x == y
            case (.int, .double), (.double, .int), (.double, .double): return a.doubleValue == b.doubleValue
            case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
            case (.object(let x), .object(let y)):
                return x.count == y.count && x.allSatisfy { member in y[member.key].map { equal(member.value, $0) } ?? false }
            default: return a == b
            }
        }
    }
}
