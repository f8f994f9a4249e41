/// What kind of input a part is, as models declare what they accept.
public enum Modality: String, Sendable, Hashable, CaseIterable, Comparable {
    case text, image, pdf, audio, video

    public static func < (lhs: Self, rhs: Self) -> Bool { allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)! }

    /// The modality of a MIME type: `image/*`, `audio/*`, `video/*`, `application/pdf`, and
    /// `text/*` (with JSON and XML) as text. `nil` for anything else (not checked).
    public static func of(mimeType: String) -> Modality? {
        let type = mimeType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        if type.hasPrefix("image/") { return .image }
        if type.hasPrefix("audio/") { return .audio }
        if type.hasPrefix("video/") { return .video }
        if type == "application/pdf" { return .pdf }
        if type.hasPrefix("text/") || type == "application/json" || type == "application/xml" { return .text }
        return nil
    }

    /// The modality of a part; `nil` when it cannot be told (a file of an unknown type).
    public static func of(_ part: APIPart) -> Modality? {
        switch part {
        case .text, .history, .toolResult: .text
        case .fileRef(let ref): of(mimeType: ref.mimeType)
        case .filePlaceholder(let placeholder): of(mimeType: placeholder.effectiveMimeType)
        case .inline(let data): of(mimeType: data.mimeType)
        }
    }
}

/// Prices in US dollars per million tokens (storage: per million tokens per hour).
public struct ModelPrices: Sendable, Hashable {
    public var input: Double
    /// Input tokens read from a cache.
    public var cachedInput: Double
    public var output: Double
    /// Input tokens written to a cache, where the provider bills them apart (Anthropic: 1.25 × input
    /// for 5-minute caches); nil: billed as input.
    public var cacheWrite: Double?
    /// Input tokens written to a cache that lives an hour (Anthropic: 2 × input); nil: `cacheWrite`.
    public var cacheWriteLong: Double?
    /// Keeping a stored cache (Gemini `cachedContents`), per million cached tokens per hour of its
    /// time to live; nil: the provider bills no storage (prefix caches, OpenAI's automatic caching).
    public var cacheStoragePerHour: Double?
    /// Fraction taken off every token price for batch calls (0.5 = half price); never off
    /// storage, which batch requests do not use (`Design/batch.md`, "Cost").
    public var batchDiscount: Double

    public init(
        input: Double, cachedInput: Double, output: Double, cacheWrite: Double? = nil, cacheWriteLong: Double? = nil,
        cacheStoragePerHour: Double? = nil, batchDiscount: Double = 0
    ) {
        self.input = input
        self.cachedInput = cachedInput
        self.output = output
        self.cacheWrite = cacheWrite
        self.cacheWriteLong = cacheWriteLong
        self.cacheStoragePerHour = cacheStoragePerHour
        self.batchDiscount = batchDiscount
    }
}

/// What a model can take and what it costs (seed 001: models declare what they can do, and
/// inputs are checked against it before any work starts).
public struct ModelInfo: Sendable, Hashable {
    public var name: String
    /// The provider that serves it (`openai`, `gemini`, `anthropic`, …): informative only.
    public var provider: String
    /// Tokens of input and output together the model can hold.
    public var contextWindow: Int
    public var maxOutputTokens: Int
    public var inputModalities: Set<Modality>
    public var supportsSystemInstruction: Bool
    public var supportsStreaming: Bool
    /// The provider's smallest context it will cache, in tokens; nil: no minimum known.
    public var minCacheTokens: Int?
    /// nil: not priced (runs uncosted).
    public var prices: ModelPrices?
    /// Where the figures come from, with the date they were read, and which were not verified.
    public var source: String

    public init(
        name: String, provider: String, contextWindow: Int, maxOutputTokens: Int, inputModalities: Set<Modality> = [.text],
        supportsSystemInstruction: Bool = true, supportsStreaming: Bool = true, minCacheTokens: Int? = nil, prices: ModelPrices? = nil,
        source: String = ""
    ) {
        self.name = name
        self.provider = provider
        self.contextWindow = contextWindow
        self.maxOutputTokens = maxOutputTokens
        self.inputModalities = inputModalities
        self.supportsSystemInstruction = supportsSystemInstruction
        self.supportsStreaming = supportsStreaming
        self.minCacheTokens = minCacheTokens
        self.prices = prices
        self.source = source
    }
}

/// Models by name. `info(for:)` finds a model by its exact name, else by the name without a
/// `models/` prefix or a dated suffix (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-5-20250929`
/// → `claude-sonnet-4-5`, `…-latest`). A model that is not found runs unchecked and uncosted.
public struct ModelCatalog: Sendable, Hashable {
    public private(set) var models: [String: ModelInfo]
    /// The date the built-in figures were read (for the entries that came from it).
    public var asOf: String?

    public init(_ models: [ModelInfo] = [], asOf: String? = nil) {
        var table: [String: ModelInfo] = [:]
        for model in models { table[model.name] = model }
        self.models = table
        self.asOf = asOf
    }

    public func info(for model: String) -> ModelInfo? {
        if let found = models[model] { return found }
        var name = model
        if name.hasPrefix("models/") {
            name.removeFirst("models/".count)
            if let found = models[name] { return found }
        }
        for suffix in Self.datedSuffixes(of: name) {
            if let found = models[String(name.dropLast(suffix))] { return found }
        }
        return nil
    }

    /// Adds `model`, replacing an entry of the same name.
    public mutating func add(_ model: ModelInfo) { models[model.name] = model }

    /// This catalog with `other`'s entries added, replacing entries of the same name.
    public func merging(_ other: ModelCatalog) -> ModelCatalog {
        var merged = self
        for model in other.models.values { merged.add(model) }
        return merged
    }

    /// Lengths of the dated suffixes `name` ends with: `-YYYY-MM-DD`, `-YYYYMMDD`, `-latest`.
    private static func datedSuffixes(of name: String) -> [Int] {
        // Most names end in neither a digit nor "-latest" (and every lookup of a model the
        // catalog does not know gets here, several times a command): nothing to copy then.
        guard let last = name.utf8.last, (48...57).contains(last) || name.hasSuffix("-latest") else { return [] }
        let bytes = Array(name.utf8)
        func digits(_ range: Range<Int>) -> Bool { range.allSatisfy { bytes[$0] >= 48 && bytes[$0] <= 57 } }
        var found: [Int] = []
        let n = bytes.count
        if name.hasSuffix("-latest") { found.append(7) }
        if n > 11, bytes[n - 11] == 45, bytes[n - 6] == 45, bytes[n - 3] == 45, digits(n - 10..<n - 6), digits(n - 5..<n - 3), digits(n - 2..<n) {
            found.append(11)
        }
        if n > 9, bytes[n - 9] == 45, digits(n - 8..<n) { found.append(9) }
        return found
    }
}
