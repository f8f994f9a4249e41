/// The one redaction of the product: every text that can reach output and may carry a secret
/// (server text, batch fields and states, streamed deltas, hook messages) goes through a
/// `SecretRedactor` — before any cut, so a secret straddling a cut cannot leave a piece behind.
///
/// **What counts as a secret** (Design/security.md, "Which values are redacted"): a value of at
/// least `minimumSecretLength` (12) bytes, not only whitespace. Shorter values are the
/// placeholders local servers document (`EMPTY` for vLLM, `ollama`, `x`, `none`): redacting them
/// would change answers ("Is the glass <redacted>?") while protecting nothing, so they are never
/// redacted. Every real key of the supported providers is far longer (39 to 108 characters).
///
/// A secret is matched in every spelling a server may echo: as is, percent-encoded (only the
/// characters URL encoding changes, or every byte as `%XX`), and with any of its characters
/// JSON-escaped — `\uXXXX` with upper- or lower-case hex (a surrogate pair beyond U+FFFF), or
/// the short escapes `\/ \" \\ \b \f \n \r \t`, their backslash escaped again any number of times
/// (`\\u0073`: escaped text inside a JSON body) — in any mix, ignoring ASCII case (so `%2d`/`%2D`,
/// `\u0041`/`a` and an upper-cased echo are caught too). Each occurrence becomes `<redacted>`.
/// The escapes are matched, not enumerated: a 40-character key has 2^40 mixed spellings.
package struct SecretRedactor: Sendable, Hashable {
    /// Values shorter than this (in UTF-8 bytes) are placeholders, not secrets.
    public static let minimumSecretLength = 12
    /// What replaces a secret.
    public static let marker = "<redacted>"

    /// Every plain spelling of every secret (as is, percent-encoded), longest first; empty when
    /// there is nothing to redact. Each is also matched with any of its characters JSON-escaped.
    public let spellings: [String]
    /// UTF-8 bytes of the longest text that can spell a secret (every character escaped; 0 when
    /// inactive): a stream holds back fewer than this, a preview redacts this much beyond its cut.
    public let longestSpelling: Int
    /// Each spelling as the ways its characters may be written: `patterns[s][k]` lists the
    /// byte sequences (ASCII letters lower-cased) that write character `k` of spelling `s`.
    private let patterns: [[[[UInt8]]]]

    /// A redactor for `secrets`; values that are not secrets (see `isSecret`) are ignored.
    public init(secrets: [String]) {
        var forms: [String] = []
        for secret in secrets where Self.isSecret(secret) { forms += Self.spellings(of: secret) }
        var seen = Set<String>()
        spellings = forms.filter { seen.insert($0.lowercased()).inserted }.sorted { $0.utf8.count > $1.utf8.count }
        patterns = spellings.map(Self.pattern(of:))
        // An escape counted with one backslash more (escaped once again: JSON text inside JSON).
        longestSpelling = patterns.map { $0.reduce(0) { $0 + ($1.map { Self.isNestable($0) ? $0.count + 1 : $0.count }.max() ?? 0) } }.max() ?? 0
    }

    /// Nothing to redact.
    public static let none = SecretRedactor(secrets: [])

    /// Whether `value` is worth redacting: at least `minimumSecretLength` bytes once trimmed.
    public static func isSecret(_ value: String) -> Bool {
        var trimmed = Substring(value)
        while let first = trimmed.first, first.isWhitespace { trimmed.removeFirst() }
        while let last = trimmed.last, last.isWhitespace { trimmed.removeLast() }
        return trimmed.utf8.count >= minimumSecretLength
    }

    /// Whether this redactor changes anything at all.
    public var isActive: Bool { !spellings.isEmpty }

    /// `text` with every occurrence of a secret (in any spelling) replaced by `<redacted>`.
    public func redact(_ text: String) -> String {
        guard isActive, !text.isEmpty else { return text }
        var text = text
        for pattern in patterns {
            text = Self.replacing(pattern, in: text)
        }
        return text
    }

    /// `text` redacted in full, then cut to `limit` characters (`…` marks a cut). Only a head of
    /// `text` long enough to hold any secret that touches the first `limit` characters is
    /// redacted, so a huge text costs no more than its preview.
    public func preview(_ text: some StringProtocol, limit: Int) -> String {
        let limit = max(0, limit)
        let head = text.prefix(limit.addingSaturating(longestSpelling).addingSaturating(1))
        let cut = head.endIndex < text.endIndex
        let redacted = redact(String(head))
        guard cut || redacted.count > limit else { return redacted }
        return String(redacted.prefix(limit)) + "…"
    }

    /// Every plain spelling of one secret (JSON escapes are matched on top of each).
    static func spellings(of value: String) -> [String] {
        var forms = [value]
        var encoded = ""
        var full = ""
        for byte in value.utf8 {
            let hex = (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            full += "%" + hex
            let unreserved = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == 0x2d || byte == 0x2e || byte == 0x5f || byte == 0x7e
            encoded += unreserved ? String(UnicodeScalar(byte)) : "%" + hex
        }
        forms.append(encoded)
        forms.append(full)
        return forms
    }

    /// The ways each character of `spelling` may be written: as is (UTF-8), as `\uXXXX` (a
    /// surrogate pair beyond U+FFFF), and as its short JSON escape when it has one. Lower-cased:
    /// the text is folded the same way when compared, so either case of letters and hex matches.
    private static func pattern(of spelling: String) -> [[[UInt8]]] {
        spelling.unicodeScalars.map { scalar in
            var ways: [[UInt8]] = [Array(String(scalar).utf8).map(fold)]
            func escape(_ unit: UInt32) -> [UInt8] {
                let hex = String(unit, radix: 16)
                return Array(("\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex).utf8)
            }
            if scalar.value > 0xFFFF {
                let v = scalar.value - 0x10000
                ways.append(escape(0xD800 + (v >> 10)) + escape(0xDC00 + (v & 0x3FF)))
            } else {
                ways.append(escape(scalar.value))
                if Character(scalar).isLetter && scalar.isASCII {
                    // `\u0041` spells `A`, which matches `a` ignoring case.
                    let other = scalar.value ^ 0x20
                    ways.append(escape(other))
                }
            }
            let short: [Unicode.Scalar: String] = ["/": "\\/", "\"": "\\\"", "\\": "\\\\", "\u{8}": "\\b", "\u{c}": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"]
            if let form = short[scalar] { ways.append(Array(form.utf8)) }
            return ways
        }
    }

    /// How a match attempt ended.
    private enum Match {
        /// The whole spelling, ending before this byte offset.
        case whole(Int)
        /// The text ended while it still agreed with the spelling: it may begin a secret.
        case beginning
        case none
    }

    /// Whether a way is an escape whose backslash may itself be escaped, any number of times
    /// (`\\u0073` is `\u0073` written inside JSON once more): every escape but `\\` itself.
    @inline(__always) private static func isNestable(_ way: [UInt8]) -> Bool {
        way.count > 1 && way[0] == 0x5c && way[1] != 0x5c
    }

    /// Whether one spelling (`pattern`) is written at `start` of `bytes`, each character in any
    /// of its ways (trying the others when one leads nowhere).
    private static func match(_ pattern: [[[UInt8]]], in bytes: UnsafeBufferPointer<UInt8>, at start: Int) -> Match {
        func from(_ k: Int, _ i: Int) -> Match {
            if k == pattern.count { return .whole(i) }
            var sawBeginning = false
            for way in pattern[k] {
                var t = i
                var j = 0
                if isNestable(way) && t < bytes.count && bytes[t] == 0x5c {
                    // One backslash or a run of them, then the rest of the escape.
                    while t < bytes.count && bytes[t] == 0x5c { t += 1 }
                    j = 1
                }
                while j < way.count && t < bytes.count && fold(bytes[t]) == way[j] {
                    j += 1
                    t += 1
                }
                if j == way.count {
                    switch from(k + 1, t) {
                    case .whole(let end): return .whole(end)
                    case .beginning: sawBeginning = true
                    case .none: break
                    }
                } else if t == bytes.count {
                    sawBeginning = true
                }
            }
            return sawBeginning ? .beginning : .none
        }
        return from(0, start)
    }

    /// Whether `byte` can be the first byte of some way of writing the first character of `pattern`.
    @inline(__always) private static func canStart(_ pattern: [[[UInt8]]], _ byte: UInt8) -> Bool {
        let folded = fold(byte)
        for way in pattern[0] where way[0] == folded { return true }
        return false
    }

    /// `text` with every occurrence of `pattern` replaced, scanning left to right. Works on UTF-8
    /// bytes: every way of writing a character begins with an ASCII byte or a lead byte and ends
    /// a character, so a match always lies on character boundaries.
    private static func replacing(_ pattern: [[[UInt8]]], in text: String) -> String {
        guard !pattern.isEmpty else { return text }
        var copy = text
        let replaced = copy.withUTF8 { bytes -> String? in
            var out: [UInt8] = []
            var copied = 0
            var i = 0
            while i < bytes.count {
                if canStart(pattern, bytes[i]), case .whole(let end) = match(pattern, in: bytes, at: i) {
                    if out.isEmpty { out.reserveCapacity(bytes.count) }
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[copied..<i]))
                    out.append(contentsOf: marker.utf8)
                    i = end
                    copied = end
                    continue
                }
                i += 1
            }
            guard copied > 0 else { return nil }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[copied...]))
            return String(decoding: out, as: UTF8.self)
        }
        return replaced ?? text
    }

    @inline(__always) private static func fold(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte }

    /// Where the earliest suffix of `text` that may begin a secret (agrees with some spelling,
    /// in any of its ways, up to the end of the text) starts; `text.endIndex` when none does. A
    /// complete spelling is not a beginning: it was redacted already.
    func startOfPossibleSecret(in text: String) -> String.Index {
        var copy = text
        let best = copy.withUTF8 { bytes -> Int in
            let first = max(0, bytes.count - longestSpelling)
            for start in first..<bytes.count {
                for pattern in patterns where Self.canStart(pattern, bytes[start]) {
                    if case .beginning = Self.match(pattern, in: bytes, at: start) { return start }
                }
            }
            return bytes.count
        }
        // Every way of writing a character begins with an ASCII byte or a lead byte: `best` is a scalar boundary.
        return best == text.utf8.count ? text.endIndex : text.utf8.index(text.utf8.startIndex, offsetBy: best)
    }
}

/// Text that arrives in pieces (a stream's deltas), redacted as a stream: a secret split across
/// two or more pieces is caught, and the pieces handed on, joined, equal the redaction of the
/// whole text. Only a tail that could be the start of a secret (a suffix equal to the first bytes
/// of some spelling, so always shorter than the longest one) is held back, until the next piece
/// shows whether it is one, or until the end; everything else goes on at once.
package struct StreamRedaction: Sendable {
    public let redactor: SecretRedactor
    /// Text received, not handed on yet (already redacted where a whole secret was seen).
    private var pending = ""

    public init(_ redactor: SecretRedactor) { self.redactor = redactor }

    /// What can be handed on now that `piece` arrived (may be empty).
    public mutating func take(_ piece: String) -> String {
        guard redactor.isActive else { return piece }
        pending += piece
        let redacted = redactor.redact(pending)
        let split = redactor.startOfPossibleSecret(in: redacted)
        pending = String(redacted.unicodeScalars[split...])
        return String(redacted.unicodeScalars[..<split])
    }

    /// The held-back tail, redacted: the end of the text.
    public mutating func finish() -> String {
        defer { pending = "" }
        return redactor.redact(pending)
    }

    /// The held-back tail without what may be the start of a secret: for a stream that broke
    /// off, whose text will never be completed (the start of a key is not shown).
    public mutating func finishCut() -> String {
        defer { pending = "" }
        let redacted = redactor.redact(pending)
        return String(redacted.unicodeScalars[..<redactor.startOfPossibleSecret(in: redacted)])
    }
}
