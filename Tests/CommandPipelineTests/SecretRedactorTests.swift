import CommandPipeline
import Testing

/// The one redaction (`SecretRedactor`): which values are secrets, every spelling, before any
/// cut, and as a stream (issue 21 class 1, issue 29 item 2).
@Suite struct SecretRedactorTests {
    static let key = "sk-live-0123456789abcdefXYZ/+="

    /// Issue 29 item 2: a placeholder key never changes a text.
    @Test(arguments: ["EMPTY", "ollama", "x", "none", "sk-no-key", " short-key  "])
    func placeholderKeysNeverChangeText(placeholder: String) {
        let redactor = SecretRedactor(secrets: [placeholder])
        #expect(!redactor.isActive)
        for text in ["Is the glass empty? Ask Ollama.", "working", "https://x.example/EMPTY?k=ollama", "none of it", placeholder, ""] {
            #expect(redactor.redact(text) == text)
            #expect(redactor.preview(text, limit: 300) == text)
        }
        var stream = StreamRedaction(redactor)
        #expect(stream.take("wor") == "wor" && stream.take("king") == "king" && stream.finish() == "")
    }

    @Test func aSecretIsTwelveBytesOrMore() {
        #expect(!SecretRedactor.isSecret("12345678901"))
        #expect(SecretRedactor.isSecret("123456789012"))
        #expect(!SecretRedactor.isSecret("   abcdefghijk   "), "whitespace does not count")
        #expect(SecretRedactor(secrets: ["123456789012"]).redact("a 123456789012 b") == "a <redacted> b")
        #expect(SecretRedactor(secrets: ["12345678901"]).redact("a 12345678901 b") == "a 12345678901 b")
    }

    @Test func aRealKeyIsRedactedInEverySpellingAndCase() {
        let redactor = SecretRedactor(secrets: [Self.key])
        let full = Self.key.utf8.map { "%" + ($0 < 16 ? "0" : "") + String($0, radix: 16, uppercase: true) }.joined()
        for echo in [Self.key, Self.key.uppercased(), "sk-live-0123456789abcdefXYZ%2F%2B%3D", "sk-live-0123456789abcdefxyz%2f%2b%3d", full, full.lowercased(), #"sk-live-0123456789abcdefXYZ\/+="#] {
            let out = redactor.redact("before " + echo + " after é")
            #expect(out == "before <redacted> after é", "\(echo) → \(out)")
        }
        #expect(redactor.redact("no key here, ünïcödé") == "no key here, ünïcödé")
    }

    /// A key straddling the preview's cut: redacted first, so no piece of it is left.
    @Test(arguments: Array(stride(from: -3, through: 40, by: 1)))
    func previewRedactsBeforeItCuts(shift: Int) {
        let redactor = SecretRedactor(secrets: [Self.key])
        let text = String(repeating: "x", count: 300 - shift) + Self.key + " and more"
        let shown = redactor.preview(text, limit: 300)
        #expect(!shown.contains("sk-live-01"), "\(shown)")
        #expect(!(0...(Self.key.count - 6)).contains { shown.contains(Self.key.dropFirst($0).prefix(6)) }, "\(shown.suffix(40))")
        #expect(shown.count <= 301)
    }

    /// Any limit a caller passes, `Int.max` included, neither traps nor shows the key.
    @Test(arguments: [Int.max, Int.max - 1, Int.min, -1, 0])
    func previewTakesAnyLimit(limit: Int) {
        let redactor = SecretRedactor(secrets: [Self.key])
        let shown = redactor.preview("before " + Self.key + " after", limit: limit)
        #expect(!shown.contains("sk-live-01"))
        #expect(limit <= 0 ? shown == "…" : shown == "before <redacted> after")
    }

    /// Issue 21 class 1: the key split across two, three or many deltas, at every split point:
    /// no delta and no join of deltas holds the key, and the joined deltas equal the redaction
    /// of the whole text.
    @Test(arguments: [1, 2, 3, 7, 100])
    func aStreamIsRedactedAsAStream(pieceLength: Int) {
        let redactor = SecretRedactor(secrets: [Self.key])
        for prefix in 0..<8 {
            let whole = String(repeating: "ab", count: prefix) + "the key " + Self.key + " twice " + Self.key.uppercased() + " end"
            let scalars = Array(whole.unicodeScalars)
            var pieces: [String] = []
            var i = 0
            while i < scalars.count {
                var piece = String.UnicodeScalarView()
                piece.append(contentsOf: scalars[i..<min(i + pieceLength, scalars.count)])
                pieces.append(String(piece))
                i += pieceLength
            }
            var stream = StreamRedaction(redactor)
            var handed = pieces.map { stream.take($0) }
            handed.append(stream.finish())
            let joined = handed.joined()
            #expect(joined == redactor.redact(whole), "\(pieceLength)/\(prefix): \(joined)")
            #expect(!joined.contains("sk-live") && !joined.lowercased().contains("sk-live"))
        }
    }

    /// Only a tail that may begin the key waits; a broken stream shows its text without it.
    @Test func onlyWhatMayBeginASecretIsHeldBack() {
        var stream = StreamRedaction(SecretRedactor(secrets: [Self.key]))
        #expect(stream.take("Hello") == "Hello", "nothing here starts a key")
        #expect(stream.take(" world s") == " world ", "'s' may start it")
        #expect(stream.take("k-live-01") == "")
        #expect(stream.take("23 no") == "sk-live-0123 no", "it was not the key after all")
        #expect(stream.take(" SK-LIVE-0123456789") == " ")
        #expect(stream.finishCut() == "", "a broken stream never shows the start of a key")
        #expect(stream.take("tail") == "tail")
    }

    @Test func aStreamWithoutSecretsPassesEveryPieceAtOnce() {
        var stream = StreamRedaction(.none)
        #expect(stream.take("Hel") == "Hel" && stream.take("lo") == "lo" && stream.finish() == "")
    }
}
