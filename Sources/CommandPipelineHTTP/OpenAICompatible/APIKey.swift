import Foundation

/// An API key that cannot leak by accident: printing, interpolating or dumping it shows
/// `<redacted>`. Read it from the environment; never accept it as a flag.
public struct APIKey: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    let value: String

    public init(_ value: String) { self.value = value }

    /// The key in the environment variable `name`, if set and not empty.
    public static func fromEnvironment(_ name: String, in environment: [String: String]) -> APIKey? {
        guard let value = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
        return APIKey(value)
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }

    /// The spellings of the key a server may echo: as is, percent-encoded (only the
    /// characters URL encoding changes, or every byte as `%XX`), and JSON-escaped (`\/`).
    /// Matching ignores case, so `%2d`/`%2D` and an upper-cased echo are caught too.
    var spellings: [String] {
        var forms = [value]
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        if let encoded = value.addingPercentEncoding(withAllowedCharacters: unreserved) { forms.append(encoded) }
        forms.append(value.utf8.map { "%" + String($0, radix: 16, uppercase: true).leftPadded(to: 2) }.joined())
        forms.append(value.replacingOccurrences(of: "/", with: "\\/"))
        var seen = Set<String>()
        return forms.filter { seen.insert($0.lowercased()).inserted }.sorted { $0.count > $1.count }
    }

    /// `text` with every occurrence of the key (in any spelling of `spellings`) replaced by
    /// `<redacted>`. Keys of every length are redacted: a short key makes server text harder
    /// to read, never leaks.
    func redact(_ text: String) -> String {
        var text = text
        for form in spellings where !form.isEmpty {
            text = text.replacingOccurrences(of: form, with: "<redacted>", options: [.caseInsensitive, .literal])
        }
        return text
    }
}

/// Server text on its way into an error message. The one rule: the key is removed from the
/// whole text first, and only then is the text cut to a preview, so a key straddling the
/// cut cannot leave a piece of itself behind. Every message that quotes a server goes
/// through here.
struct ServerText: Sendable {
    /// Characters of server text quoted in a message.
    static let previewLength = 300

    let key: APIKey?

    /// `text` redacted, then cut to `limit` characters (with `…` when cut).
    func preview(_ text: String, limit: Int = ServerText.previewLength) -> String {
        // Any spelling of the key that touches the first `limit` characters ends within this head.
        let text = text.drop { $0.isWhitespace || $0.isNewline }
        let head = text.prefix(limit + longestSpelling + 1)
        let cut = head.endIndex < text.endIndex
        let redacted = key?.redact(String(head)) ?? String(head)
        guard cut || redacted.count > limit else { return redacted.trimmingCharacters(in: .whitespacesAndNewlines) }
        return String(redacted.prefix(limit)) + "…"
    }

    /// The first bytes of `body` as text, redacted, then cut. Only a bounded head of a large
    /// body is decoded: enough that any key touching the preview lies wholly inside it.
    func preview(_ body: Data, limit: Int = ServerText.previewLength) -> String {
        let head = body.prefix(4 * (limit + longestSpelling + 1))
        let text = preview(String(decoding: head, as: UTF8.self), limit: limit)
        return text.isEmpty ? "(empty body)" : text
    }

    /// Redacted in full, not cut: for text that must stay whole.
    func redact(_ text: String) -> String { key?.redact(text) ?? text }

    private var longestSpelling: Int { key.map { 3 * $0.value.utf8.count } ?? 0 }
}

/// URLs as they appear in messages: never with `user:password@`.
enum DisplayURL {
    /// `text` without the userinfo of its authority (`http://u:p@h/x` → `http://h/x`). Works on
    /// text that does not parse as a URL too.
    static func withoutUserinfo(_ text: String) -> String {
        // Most URLs have no "@" at all: a byte scan instead of a walk over Characters.
        guard text.utf8.contains(UInt8(ascii: "@")) else { return text }
        guard let scheme = text.range(of: "://") else { return text }
        let authority = text[scheme.upperBound...]
        let end = authority.firstIndex { "/?#".contains($0) } ?? text.endIndex
        guard let at = text[scheme.upperBound..<end].lastIndex(of: "@") else { return text }
        return String(text[..<scheme.upperBound]) + String(text[text.index(after: at)...])
    }

    static func string(_ url: URL) -> String { withoutUserinfo(url.absoluteString) }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
