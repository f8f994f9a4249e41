/// Reads typed values out of `JSONValue`s while keeping the field path, collecting every
/// problem instead of stopping at the first, so one error result can list them all.
package struct WireReader {
    enum Component {
        case key(String)
        case index(Int)
    }

    public private(set) var issues: [ValidationIssue] = []
    private var components: [Component] = []

    public init() { components.reserveCapacity(8) }

    /// The current path, e.g. `plan.calls[1].parts[0]`.
    public var path: String {
        var text = ""
        for component in components {
            switch component {
            case .key(let key): text += text.isEmpty ? key : "." + key
            case .index(let i): text += "[\(i)]"
            }
        }
        return text
    }

    public mutating func fail(_ message: String) { issues.append(ValidationIssue(path: path, message: message)) }

    public mutating func at<T>(_ key: String, _ body: (inout WireReader) -> T) -> T {
        components.append(.key(key))
        defer { components.removeLast() }
        return body(&self)
    }

    public mutating func at<T>(_ index: Int, _ body: (inout WireReader) -> T) -> T {
        components.append(.index(index))
        defer { components.removeLast() }
        return body(&self)
    }

    /// The value as an object whose keys are all in `known`; unknown keys are issues naming them.
    public mutating func object(_ value: JSONValue, known: [String], what: String) -> JSONObject? {
        guard case .object(let object) = value else {
            fail("expected \(what) as an object, found \(value.typeName)")
            return nil
        }
        for key in object.keys where !known.contains(key) {
            at(key) { $0.fail("unknown key '\(key)' in \(what); known keys: \(known.joined(separator: ", "))") }
        }
        return object
    }

    /// Reads `object[key]` with `read` at the key's path; reports a missing required key.
    public mutating func field<T>(_ object: JSONObject, _ key: String, required: Bool = false, _ read: (inout WireReader, JSONValue) -> T?) -> T? {
        guard let value = object[key], value != .null || required else {
            if required { at(key) { $0.fail("missing required key '\(key)'") } }
            return nil
        }
        return at(key) { read(&$0, value) }
    }

    public mutating func string(_ value: JSONValue) -> String? {
        if case .string(let s) = value { return s }
        fail("expected a string, found \(value.typeName)")
        return nil
    }

    public mutating func int(_ value: JSONValue) -> Int? {
        if let i = value.intValue { return i }
        if let d = value.doubleValue, d.rounded() == d {
            fail("the integer \(d) is too large; integers here must be between \(Int.min.grouped) and \(Int.max.grouped)")
        } else {
            fail("expected an integer, found \(value.typeName == "number" ? "a fractional number" : value.typeName)")
        }
        return nil
    }

    public mutating func double(_ value: JSONValue) -> Double? {
        if let d = value.doubleValue { return d }
        fail("expected a number, found \(value.typeName)")
        return nil
    }

    public mutating func bool(_ value: JSONValue) -> Bool? {
        if case .bool(let b) = value { return b }
        fail("expected true or false, found \(value.typeName)")
        return nil
    }

    /// An array whose elements each read at their index; nil elements are dropped (their issue is recorded).
    public mutating func array<T>(_ value: JSONValue, _ read: (inout WireReader, JSONValue) -> T?) -> [T]? {
        guard case .array(let elements) = value else {
            fail("expected an array, found \(value.typeName)")
            return nil
        }
        var out: [T] = []
        out.reserveCapacity(elements.count)
        for (i, element) in elements.enumerated() {
            if let item = at(i, { read(&$0, element) }) { out.append(item) }
        }
        return out
    }
}
