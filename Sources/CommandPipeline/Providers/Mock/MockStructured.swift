/// The mock's answer under a JSON `response_format`: deterministic JSON that conforms, derived
/// from the schema and the prompt (the last text part), so structured-output commands run
/// offline. `json_object`: `{"echo": prompt}`. `json_schema`: a value built from the schema —
/// `const`, an `enum` member chosen by the prompt's hash, every property (the required ones
/// first when `maxProperties` is tight), `minItems` items (at least one), strings from the
/// prompt cut or padded to the length bounds, numbers from the prompt's hash within the bounds
/// and on `multipleOf`; `anyOf`/`oneOf` take the first branch whose value conforms. A `pattern`
/// is not generated from: the prompt and a few common shapes are tried, else the answer breaks
/// the schema (and the engine repairs, then reports it, as for any model).
///
/// The whole answer is bounded (`Budget`): at most `Budget.nodes` values, `Budget.bytes` bytes of
/// strings and keys, `Budget.steps` validation steps for the conformance checks; once one runs
/// out, every further value is the smallest of its type (`""`, `0`, `[]`, `{}`) and the engine
/// repairs or fails with `invalid_output` as for a model's wrong answer.
enum MockStructured {
    static func answer(_ format: JSONValue?, prompt: String) -> String? {
        guard case .object(let f)? = format, let type = f["type"]?.stringValue else { return nil }
        switch type {
        case "json_object":
            return JSONSerializer.serialize(.object(["echo": .string(prompt)]))
        case "json_schema":
            guard let schema = f["json_schema"]?.objectValue?["schema"] else { return nil }
            let generator = Generator(root: schema, prompt: prompt, seed: fnv1a(prompt), budget: Budget())
            return JSONSerializer.serialize(generator.value(schema, depth: 0))
        default:
            return nil
        }
    }

    /// A value that conforms to `schema` (a tool's parameters), built as for a `json_schema` answer.
    static func value(for schema: JSONValue, prompt: String) -> JSONValue {
        Generator(root: schema, prompt: prompt, seed: fnv1a(prompt), budget: Budget()).value(schema, depth: 0)
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    /// What one answer may still spend (one generation, one thread).
    final class Budget {
        static let nodes = 100_000
        static let bytes = 4 * 1024 * 1024
        static let steps = 1_000_000
        var nodes = Budget.nodes
        var bytes = Budget.bytes
        var steps = Budget.steps
        var exhausted: Bool { nodes <= 0 || bytes <= 0 }
    }

    struct Generator {
        let root: JSONValue
        let prompt: String
        let seed: UInt64
        let budget: Budget
        static let maximumDepth = 24

        func conforms(_ value: JSONValue, _ schema: JSONValue) -> Bool {
            guard budget.steps > 0 else { return false }
            let (violation, used) = JSONSchema(unchecked: root).validateCounting(value, against: schema, maxSteps: Swift.min(budget.steps, JSONSchema.maximumSteps))
            budget.steps -= Swift.max(1, used)
            return violation == nil
        }

        /// The smallest value of the schema's type: what is left once the budget runs out.
        func smallest(_ schema: JSONValue) -> JSONValue {
            guard case .object(let s) = schema else { return .null }
            switch type(of: s) {
            case "null": return .null
            case "boolean": return .bool(false)
            case "integer", "number": return .int(0)
            case "array": return .array([])
            case "object": return .object([:])
            default: return .string("")
            }
        }

        func value(_ schema: JSONValue, depth: Int) -> JSONValue {
            guard !budget.exhausted else { return smallest(schema) }
            budget.nodes -= 1
            let made = unbounded(schema, depth: depth)
            switch made {
            case .string(let text): budget.bytes -= text.utf8.count
            case .array, .object, .null, .bool, .int, .double: break
            }
            return made
        }

        /// A const or enum member: charged its size once chosen.
        func charged(_ v: JSONValue) -> JSONValue {
            if case .string = v { return v }  // charged by value(_:depth:)
            budget.bytes -= JSONSerializer.serialize(v).utf8.count
            return v
        }

        private func unbounded(_ schema: JSONValue, depth: Int) -> JSONValue {
            guard depth <= Self.maximumDepth, case .object(var s) = schema else { return .null }
            if let ref = s["$ref"]?.stringValue, let target = JSONSchema.resolve(ref, in: root) { return value(target, depth: depth + 1) }
            if let c = s["const"] { return charged(c) }
            if let options = s["enum"]?.arrayValue, !options.isEmpty {
                let start = Int(seed % UInt64(options.count))
                let ordered = options[start...] + options[..<start]
                return charged(ordered.first { conforms($0, schema) } ?? options[start])
            }
            if let all = s["allOf"]?.arrayValue {
                s["allOf"] = nil
                for case .object(let part) in all.map({ resolved($0) }) {
                    for (key, v) in part {
                        switch key {
                        case "properties":
                            var merged = s["properties"]?.objectValue ?? [:]
                            for (name, sub) in v.objectValue ?? [:] { merged[name] = sub }
                            s["properties"] = .object(merged)
                        case "required":
                            s["required"] = .array((s["required"]?.arrayValue ?? []) + (v.arrayValue ?? []))
                        default:
                            s[key] = v
                        }
                    }
                }
                return value(.object(s), depth: depth + 1)
            }
            for key in ["anyOf", "oneOf"] {
                guard let branches = s[key]?.arrayValue, !branches.isEmpty else { continue }
                var rest = s
                rest[key] = nil
                var first: JSONValue?
                for branch in branches {
                    var combined = rest
                    for (k, v) in resolved(branch).objectValue ?? [:] { combined[k] = v }
                    let candidate = value(.object(combined), depth: depth + 1)
                    if first == nil { first = candidate }
                    if conforms(candidate, schema) { return candidate }
                }
                return first ?? .null
            }
            switch type(of: s) {
            case "null": return .null
            case "boolean": return .bool(seed % 2 == 0)
            case "integer": return .int(integer(s))
            case "number": return number(s)
            case "array": return array(s, depth: depth)
            case "object": return object(s, depth: depth)
            default: return .string(string(s))
            }
        }

        func resolved(_ schema: JSONValue) -> JSONValue {
            var current = schema
            for _ in 0..<JSONSchema.maximumRefDepth {
                guard let ref = current.objectValue?["$ref"]?.stringValue, let target = JSONSchema.resolve(ref, in: root) else { break }
                current = target
            }
            return current
        }

        func type(of s: JSONObject) -> String {
            if let type = s["type"] {
                let names = type.arrayValue?.compactMap(\.stringValue) ?? [type.stringValue ?? "string"]
                return names.first { $0 != "null" } ?? names.first ?? "string"
            }
            if s["properties"] != nil || s["required"] != nil || s["additionalProperties"] != nil { return "object" }
            if s["items"] != nil || s["prefixItems"] != nil || s["minItems"] != nil { return "array" }
            if s["minimum"] != nil || s["maximum"] != nil || s["multipleOf"] != nil { return "number" }
            return "string"
        }

        func integer(_ s: JSONObject) -> Int {
            var low = Int.min / 2, high = Int.max / 2
            if let m = s["minimum"]?.doubleValue { low = max(low, whole(m.rounded(.up))) }
            if let m = s["exclusiveMinimum"]?.doubleValue { low = max(low, whole(m.rounded(.down)) &+ 1) }
            if let m = s["maximum"]?.doubleValue { high = min(high, whole(m.rounded(.down))) }
            if let m = s["exclusiveMaximum"]?.doubleValue { high = min(high, whole(m.rounded(.up)) &- 1) }
            var v = min(max(Int(seed % 100), low), high)
            if let step = s["multipleOf"]?.intValue, step > 0 {
                v = v / step * step
                if v < low { v = v.addingSaturating(step) }
            }
            return v
        }

        /// `d` as an Int, within ±2^62 (bounds come from the schema: any finite number).
        func whole(_ d: Double) -> Int {
            guard d.isFinite else { return 0 }
            return d >= 4.6e18 ? Int.max / 2 : d <= -4.6e18 ? Int.min / 2 : Int(d)
        }

        func number(_ s: JSONObject) -> JSONValue {
            if let step = s["multipleOf"], step.intValue == nil { return .double(fractional(s, step: step.doubleValue ?? 1)) }
            return .int(integer(s))
        }

        func fractional(_ s: JSONObject, step: Double) -> Double {
            let low = s["minimum"]?.doubleValue ?? s["exclusiveMinimum"].flatMap(\.doubleValue).map { $0 + step } ?? 0
            let multiple = (max(low, Double(seed % 100) * step) / step).rounded(.up)
            return multiple * step
        }

        func string(_ s: JSONObject) -> String {
            // What the shortest candidate needs at least: the budget refuses it before it is built.
            let least = Swift.max(Swift.min(s["minLength"]?.intValue ?? 0, 1_000_000), Swift.min(prompt.utf8.count, s["maxLength"]?.intValue ?? Int.max, 1))
            guard least <= budget.bytes else {
                budget.bytes = 0
                return ""
            }
            var candidates = [prompt]
            if s["pattern"] != nil { candidates += ["a", "A", "0", "a1", "example", "2026-01-01", "x@example.com"] }
            for candidate in candidates {
                let shaped = shape(candidate, s)
                if conforms(.string(shaped), .object(s)) { return shaped }
            }
            return shape(prompt, s)
        }

        func shape(_ text: String, _ s: JSONObject) -> String {
            var scalars = Array(text.unicodeScalars)
            if let max = s["maxLength"]?.intValue, scalars.count > max { scalars = Array(scalars.prefix(max)) }
            // Padded up to the bound (at most 1,000,000): a text already longer stays as it is.
            if let min = s["minLength"]?.intValue {
                let target = Swift.min(min, 1_000_000)
                if scalars.count < target { scalars += Array(repeating: "x", count: target - scalars.count) }
            }
            var out = String.UnicodeScalarView()
            out.append(contentsOf: scalars)
            return String(out)
        }

        func array(_ s: JSONObject, depth: Int) -> JSONValue {
            let prefix = s["prefixItems"]?.arrayValue ?? []
            let maxItems = s["maxItems"]?.intValue ?? Int.max
            var count = max(s["minItems"]?.intValue ?? 0, prefix.count, 1)
            if case .bool(false)? = s["items"] { count = min(count, prefix.count) }
            count = min(count, maxItems, 10_000, Swift.max(0, budget.nodes))
            return .array((0..<count).map { i in
                i < prefix.count ? value(prefix[i], depth: depth + 1) : value(s["items"] ?? .object([:]), depth: depth + 1)
            })
        }

        func object(_ s: JSONObject, depth: Int) -> JSONValue {
            let properties = s["properties"]?.objectValue ?? [:]
            let required = (s["required"]?.arrayValue ?? []).compactMap(\.stringValue)
            let maxProperties = s["maxProperties"]?.intValue ?? Int.max
            var out = JSONObject()
            for name in required where out[name] == nil && out.count < maxProperties {
                out[name] = value(properties[name] ?? s["additionalProperties"] ?? .object([:]), depth: depth + 1)
            }
            for (name, sub) in properties where out[name] == nil && out.count < maxProperties {
                out[name] = value(sub, depth: depth + 1)
            }
            let extra = s["additionalProperties"]
            if extra != .bool(false), let min = s["minProperties"]?.intValue {
                var n = 0
                while out.count < Swift.min(min, 10_000) {
                    if budget.exhausted { break }
                    if out["extra_\(n)"] == nil {
                        budget.bytes -= 8
                        out["extra_\(n)"] = value(extra ?? .object([:]), depth: depth + 1)
                    }
                    n += 1
                }
            }
            return .object(out)
        }
    }
}

extension JSONSchema {
    /// Whether `value` conforms to `schema`, a part of the schema `root` (its `$ref`s resolve there).
    static func conforms(_ value: JSONValue, to schema: JSONValue, root: JSONValue) -> Bool {
        JSONSchema(unchecked: root).validate(value, against: schema) == nil
    }
}
