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
/// characters URL encoding changes, or every byte as `%XX`) and JSON-escaped (`\/`), ignoring
/// case (so `%2d`/`%2D` and an upper-cased echo are caught too). Each occurrence becomes
/// `<redacted>`.
public struct SecretRedactor: Sendable, Hashable {
    /// Values shorter than this (in UTF-8 bytes) are placeholders, not secrets.
    public static let minimumSecretLength = 12
    /// What replaces a secret.
    public static let marker = "<redacted>"

    /// Every spelling of every secret, longest first; empty when there is nothing to redact.
    public let spellings: [String]
    /// UTF-8 bytes of the longest spelling (0 when inactive): a stream holds back fewer than this.
    public let longestSpelling: Int

    /// A redactor for `secrets`; values that are not secrets (see `isSecret`) are ignored.
    public init(secrets: [String]) {
        var forms: [String] = []
        for secret in secrets where Self.isSecret(secret) { forms += Self.spellings(of: secret) }
        var seen = Set<String>()
        spellings = forms.filter { seen.insert($0.lowercased()).inserted }.sorted { $0.utf8.count > $1.utf8.count }
        longestSpelling = spellings.first?.utf8.count ?? 0
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
        for form in spellings where text.utf8.count >= form.utf8.count {
            text = Self.replacing(form, in: text)
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

    /// Every spelling of one secret.
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
        forms.append(value.replacingOccurrences(of: "/", with: "\\/"))
        return forms
    }

    /// `text` with every occurrence of `form` replaced, scanning left to right; ASCII letters
    /// match either case. Works on UTF-8 bytes: an ASCII byte never occurs inside a multi-byte
    /// character, so a match always lies on character boundaries.
    private static func replacing(_ form: String, in text: String) -> String {
        let needle = Array(form.utf8).map(fold)
        guard let first = needle.first else { return text }
        var copy = text
        let replaced = copy.withUTF8 { bytes -> String? in
            guard bytes.count >= needle.count else { return nil }
            var out: [UInt8] = []
            var copied = 0
            var i = 0
            let last = bytes.count - needle.count
            while i <= last {
                if fold(bytes[i]) == first {
                    var j = 1
                    while j < needle.count && fold(bytes[i + j]) == needle[j] { j += 1 }
                    if j == needle.count {
                        if out.isEmpty { out.reserveCapacity(bytes.count) }
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[copied..<i]))
                        out.append(contentsOf: marker.utf8)
                        i += needle.count
                        copied = i
                        continue
                    }
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
}

/// Text that arrives in pieces (a stream's deltas), redacted as a stream: a secret split across
/// two or more pieces is caught, and the pieces handed on, joined, equal the redaction of the
/// whole text. Only a tail that could be the start of a secret (a suffix equal to the first bytes
/// of some spelling, so always shorter than the longest one) is held back, until the next piece
/// shows whether it is one, or until the end; everything else goes on at once.
public struct StreamRedaction: Sendable {
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

extension SecretRedactor {
    /// Where the longest suffix of `text` that is the beginning of some spelling (ignoring ASCII
    /// case) starts; `text.endIndex` when none is. A complete spelling is not a beginning: it was
    /// redacted already.
    func startOfPossibleSecret(in text: String) -> String.Index {
        let bytes = Array(text.utf8)
        var best = bytes.count
        for form in spellings {
            let needle = Array(form.utf8)
            let longest = min(needle.count - 1, bytes.count)
            guard longest > 0 else { continue }
            // Suffix lengths from longest to shortest: the first that matches is this form's best.
            for length in stride(from: longest, through: 1, by: -1) where bytes.count - length < best {
                let start = bytes.count - length
                var matches = true
                for i in 0..<length where Self.foldByte(bytes[start + i]) != Self.foldByte(needle[i]) {
                    matches = false
                    break
                }
                if matches {
                    best = start
                    break
                }
            }
        }
        // A spelling begins with an ASCII byte or a UTF-8 lead byte: `best` is a scalar boundary.
        return best == bytes.count ? text.endIndex : text.utf8.index(text.utf8.startIndex, offsetBy: best)
    }

    @inline(__always) static func foldByte(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte }
}
