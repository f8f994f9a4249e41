import Foundation
import CommandPipeline

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

    /// The redaction of this key (`SecretRedactor`: every spelling a server may echo, ignoring
    /// case; nothing at all for a placeholder shorter than 12 bytes such as `EMPTY` or `ollama`).
    var redactor: SecretRedactor { SecretRedactor(secrets: [value]) }

    /// `text` with every occurrence of the key (in any spelling) replaced by `<redacted>`;
    /// unchanged for a placeholder key (see `SecretRedactor.isSecret`).
    func redact(_ text: String) -> String { redactor.redact(text) }
}

/// Server text on its way into an error message. The one rule: the key is removed from the
/// whole text first, and only then is the text cut to a preview, so a key straddling the
/// cut cannot leave a piece of itself behind. Every message that quotes a server goes
/// through here.
struct ServerText: Sendable {
    /// Characters of server text quoted in a message.
    static let previewLength = 300

    /// The one redaction (`SecretRedactor`), made once from the key.
    let redactor: SecretRedactor

    init(key: APIKey?) { redactor = key?.redactor ?? .none }

    /// For text that may echo several secrets (the header values a webhook receiver was given).
    init(secrets: [String]) { redactor = SecretRedactor(secrets: secrets) }

    /// Whether there is a secret to remove at all.
    var isActive: Bool { redactor.isActive }

    /// `text` redacted, then cut to `limit` characters (with `…` when cut).
    func preview(_ text: String, limit: Int = ServerText.previewLength) -> String {
        let shown = redactor.preview(text.drop { $0.isWhitespace || $0.isNewline }, limit: limit)
        return shown.hasSuffix("…") ? shown : shown.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The first bytes of `body` as text, redacted, then cut. Only a bounded head of a large
    /// body is decoded: enough that any key touching the preview lies wholly inside it.
    func preview(_ body: Data, limit: Int = ServerText.previewLength) -> String {
        let head = body.prefix(4 * (limit + redactor.longestSpelling + 1))
        let text = preview(String(decoding: head, as: UTF8.self), limit: limit)
        return text.isEmpty ? "(empty body)" : text
    }

    /// Redacted in full, not cut: for text that must stay whole.
    func redact(_ text: String) -> String { redactor.redact(text) }
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

    /// An endpoint as messages name it: without userinfo or query (which may hold tokens).
    static func endpoint(_ url: URL?) -> String {
        guard let url else { return "(no URL)" }
        guard var components = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return string(url) }
        components.query = nil
        components.user = nil
        components.password = nil
        return components.string ?? string(url)
    }
}

