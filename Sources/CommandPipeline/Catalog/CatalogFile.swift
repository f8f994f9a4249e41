import Foundation

/// A user catalog in JSON, added over another catalog (`--models FILE`):
///
///     {"models": {
///        "my-model":  {"provider": "openai", "context_window": 32768, "max_output_tokens": 4096,
///                      "input_modalities": ["text", "image"], "system_instruction": true, "streaming": true,
///                      "min_cache_tokens": 1024,
///                      "prices": {"input": 0.5, "cached_input": 0.25, "output": 1.5, "batch_discount": 0.5},
///                      "source": "our contract, 2026-11"},
///        "gpt-4o":    {"prices": {"input": 2.0, "output": 8.0}}
///     }}
///
/// An entry for a model the base catalog has changes only the fields it gives; a new model needs
/// `context_window` and `max_output_tokens` (the rest default to text only, system instruction and
/// streaming supported, no cache minimum, unpriced). `prices` needs `input` and `output`;
/// `cached_input` defaults to `input`, `batch_discount` to 0. `null` clears an optional field.
/// Parsing is strict: an unknown key, a wrong type, a duplicate key or a number out of range is
/// an error that names where it is.
package enum CatalogFile {
    /// Why a catalog could not be read: where (`models.x.prices.input`) and what.
    package struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { path.isEmpty ? message : "\(path): \(message)" }
    }

    static let maxBytes = 16 << 20
    static let tokenRange = 1...100_000_000
    static let priceRange: ClosedRange<Double> = 0...1_000_000

    /// Reads `path` and returns `base` with its entries added.
    public static func load(_ path: String, over base: ModelCatalog) -> Result<ModelCatalog, Problem> {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            return .failure(Problem(path: "", message: "cannot open \(path): \(String(cString: strerror(errno)))"))
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maxBytes + 1) ?? Data()
        } catch {
            return .failure(Problem(path: "", message: "cannot read \(path): \(error.localizedDescription)"))
        }
        guard data.count <= maxBytes else { return .failure(Problem(path: "", message: "\(path) is larger than \(maxBytes >> 20) MiB")) }
        return parse(Array(data), over: base)
    }

    /// Parses catalog JSON and returns `base` with its entries added.
    public static func parse(_ bytes: [UInt8], over base: ModelCatalog) -> Result<ModelCatalog, Problem> {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes, options: .strict)
        } catch {
            return .failure(Problem(path: error.path ?? "", message: "not valid JSON: \(error.message) at byte \(error.offset)"))
        }
        do throws(Problem) {
            let top = try object(root, at: "")
            try onlyKeys(top, ["models"], at: "")
            guard let modelsValue = top["models"] else { throw Problem(path: "", message: "a catalog is an object with \"models\": {name: {…}}") }
            var catalog = base
            let models = try object(modelsValue, at: "models")
            for name in models.keys.sorted() {
                let path = "models.\(name)"
                guard !name.isEmpty, name.utf8.count <= 256 else { throw Problem(path: path, message: "a model name has 1 to 256 bytes") }
                catalog.add(try entry(models[name]!, name: name, base: base.models[name], at: path))
            }
            return .success(catalog)
        } catch {
            return .failure(error)
        }
    }

    private static let entryKeys: Set<String> = [
        "provider", "context_window", "max_output_tokens", "input_modalities", "system_instruction", "streaming", "min_cache_tokens", "prices", "source",
    ]

    private static func entry(_ value: JSONValue, name: String, base: ModelInfo?, at path: String) throws(Problem) -> ModelInfo {
        let fields = try object(value, at: path)
        try onlyKeys(fields, entryKeys, at: path)
        if base == nil {
            for required in ["context_window", "max_output_tokens"] where fields[required] == nil {
                throw Problem(path: path, message: "a model not in the built-in catalog needs \"\(required)\"")
            }
        }
        var info = base ?? ModelInfo(name: name, provider: "", contextWindow: 1, maxOutputTokens: 1, source: "user catalog")
        info.name = name
        if base != nil { info.source = "user catalog over: " + info.source }
        if let v = fields["provider"] { info.provider = try string(v, at: path + ".provider") }
        if let v = fields["context_window"] { info.contextWindow = try integer(v, in: tokenRange, at: path + ".context_window") }
        if let v = fields["max_output_tokens"] { info.maxOutputTokens = try integer(v, in: tokenRange, at: path + ".max_output_tokens") }
        if let v = fields["input_modalities"] {
            guard case .array(let items) = v, !items.isEmpty else {
                throw Problem(path: path + ".input_modalities", message: "expected a non-empty list from \(Modality.allCases.map(\.rawValue)), got \(describe(v))")
            }
            var set: Set<Modality> = []
            for (i, item) in items.enumerated() {
                let text = try string(item, at: "\(path).input_modalities[\(i)]")
                guard let modality = Modality(rawValue: text) else {
                    throw Problem(path: "\(path).input_modalities[\(i)]", message: "unknown modality \"\(text)\"; known: \(Modality.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                set.insert(modality)
            }
            info.inputModalities = set
        }
        if let v = fields["system_instruction"] { info.supportsSystemInstruction = try bool(v, at: path + ".system_instruction") }
        if let v = fields["streaming"] { info.supportsStreaming = try bool(v, at: path + ".streaming") }
        if let v = fields["min_cache_tokens"] {
            info.minCacheTokens = v == .null ? nil : try integer(v, in: 0...tokenRange.upperBound, at: path + ".min_cache_tokens")
        }
        if let v = fields["prices"] { info.prices = v == .null ? nil : try prices(v, base: info.prices, at: path + ".prices") }
        if let v = fields["source"] { info.source = try string(v, at: path + ".source") }
        guard info.maxOutputTokens <= info.contextWindow else {
            throw Problem(path: path + ".max_output_tokens", message: "\(info.maxOutputTokens) is larger than the context window (\(info.contextWindow))")
        }
        return info
    }

    private static func prices(_ value: JSONValue, base: ModelPrices?, at path: String) throws(Problem) -> ModelPrices {
        let fields = try object(value, at: path)
        try onlyKeys(fields, ["input", "cached_input", "output", "cache_write", "cache_write_1h", "cache_storage_per_hour", "batch_discount"], at: path)
        if base == nil {
            for required in ["input", "output"] where fields[required] == nil {
                throw Problem(path: path, message: "prices need \"\(required)\" (US dollars per million tokens)")
            }
        }
        let input = try fields["input"].map { v throws(Problem) in try number(v, in: priceRange, at: path + ".input") } ?? base!.input
        let output = try fields["output"].map { v throws(Problem) in try number(v, in: priceRange, at: path + ".output") } ?? base!.output
        var result = base ?? ModelPrices(input: input, cachedInput: input, output: output)
        result.input = input
        result.output = output
        if let v = fields["cached_input"] { result.cachedInput = try number(v, in: priceRange, at: path + ".cached_input") }
        if let v = fields["cache_write"] { result.cacheWrite = v == .null ? nil : try number(v, in: priceRange, at: path + ".cache_write") }
        if let v = fields["cache_write_1h"] { result.cacheWriteLong = v == .null ? nil : try number(v, in: priceRange, at: path + ".cache_write_1h") }
        if let v = fields["cache_storage_per_hour"] {
            result.cacheStoragePerHour = v == .null ? nil : try number(v, in: priceRange, at: path + ".cache_storage_per_hour")
        }
        if let v = fields["batch_discount"] { result.batchDiscount = try number(v, in: 0...0.99, at: path + ".batch_discount") }
        return result
    }

    // MARK: strict readers (shared with `DeploymentsFile`)

    static func object(_ value: JSONValue, at path: String) throws(Problem) -> JSONObject {
        guard case .object(let object) = value else { throw Problem(path: path, message: "expected an object, got \(describe(value))") }
        return object
    }

    static func onlyKeys(_ object: JSONObject, _ allowed: Set<String>, at path: String) throws(Problem) {
        for key in object.keys.sorted() where !allowed.contains(key) {
            throw Problem(path: path.isEmpty ? key : "\(path).\(key)", message: "unknown key \"\(key)\"; known: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    static func string(_ value: JSONValue, at path: String) throws(Problem) -> String {
        guard case .string(let s) = value else { throw Problem(path: path, message: "expected a string, got \(describe(value))") }
        return s
    }

    private static func bool(_ value: JSONValue, at path: String) throws(Problem) -> Bool {
        guard case .bool(let b) = value else { throw Problem(path: path, message: "expected true or false, got \(describe(value))") }
        return b
    }

    static func integer(_ value: JSONValue, in range: ClosedRange<Int>, at path: String) throws(Problem) -> Int {
        guard case .int(let n) = value, range.contains(n) else {
            throw Problem(path: path, message: "expected a whole number from \(range.lowerBound) to \(range.upperBound), got \(describe(value))")
        }
        return n
    }

    private static func number(_ value: JSONValue, in range: ClosedRange<Double>, at path: String) throws(Problem) -> Double {
        let n: Double
        func spelled(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)" }
        let expected = "expected a number from \(spelled(range.lowerBound)) to \(spelled(range.upperBound)), got \(describe(value))"
        switch value {
        case .int(let i): n = Double(i)
        case .double(let d): n = d
        default: throw Problem(path: path, message: expected)
        }
        guard n.isFinite, range.contains(n) else { throw Problem(path: path, message: expected) }
        return n
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let b): "\(b)"
        case .int(let i): "\(i)"
        case .double(let d): "\(d)"
        case .string(let s): "\"\(s.prefix(40))\(s.count > 40 ? "…" : "")\""
        case .array: "a list"
        case .object: "an object"
        }
    }
}
