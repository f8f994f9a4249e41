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

    // MARK: - JSON-escaped spellings (issue 21: a key written with `\u` escapes inside answer text)

    /// `text` with character `k` of it written the way `choice(k)` picks: 0 as is, 1 `\u` lower-case
    /// hex, 2 `\u` upper-case hex, 3 as is with its case swapped, 4 its short escape when it has one.
    static func spell(_ text: String, _ choice: (Int) -> Int) -> String {
        var out = ""
        for (k, scalar) in text.unicodeScalars.enumerated() {
            let hex = String(scalar.value, radix: 16)
            let padded = String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            switch choice(k) % 5 {
            case 1: out += "\\u" + padded
            case 2: out += "\\u" + padded.uppercased()
            case 3: out += String(scalar).uppercased() == String(scalar) ? String(scalar).lowercased() : String(scalar).uppercased()
            case 4 where scalar == "/": out += "\\/"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A tiny deterministic generator: the mixes are the same on every run.
    struct Mixer {
        var state: UInt64
        mutating func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33)
        }
    }

    /// Every character escaped alone, every character escaped, and 300 random mixes of the five
    /// ways (as is, `\u` lower and upper hex, other case, `\/`): each is one `<redacted>`.
    @Test func aKeyWithJSONEscapesIsRedactedInEveryMix() {
        let redactor = SecretRedactor(secrets: [Self.key])
        var spellings: [String] = []
        for k in 0..<Self.key.unicodeScalars.count {
            spellings.append(Self.spell(Self.key) { $0 == k ? 1 : 0 })
            spellings.append(Self.spell(Self.key) { $0 == k ? 2 : 0 })
        }
        spellings += [1, 2, 3, 4].map { way in Self.spell(Self.key) { _ in way } }
        var mixer = Mixer(state: 21)
        for _ in 0..<300 { spellings.append(Self.spell(Self.key) { _ in mixer.next() }) }
        // Escaped text written inside JSON once more, and twice: each escape's backslash doubled (a
        // raw body quoted in a message), quadrupled.
        for _ in 0..<50 {
            let once = Self.spell(Self.key) { _ in mixer.next() }
            spellings.append(once.replacingOccurrences(of: "\\", with: "\\\\"))
            spellings.append(once.replacingOccurrences(of: "\\", with: "\\\\\\\\"))
        }
        // The percent-encoded spelling with its own characters escaped too.
        spellings.append(Self.spell("sk-live-0123456789abcdefXYZ%2F%2B%3D") { _ in mixer.next() })
        for spelling in spellings {
            let out = redactor.redact("before " + spelling + " after é")
            #expect(out == "before <redacted> after é", "\(spelling) → \(out)")
        }
    }

    /// Mutations that are not the key stay as they are: one character changed (escaped or not),
    /// one dropped, a broken escape (`\u` with three hex digits, a non-hex digit).
    @Test func nearMissesOfAnEscapedKeyAreLeftAlone() {
        let redactor = SecretRedactor(secrets: [Self.key])
        let scalars = Array(Self.key.unicodeScalars)
        var mixer = Mixer(state: 7)
        for k in 0..<scalars.count {
            var changed = scalars
            changed[k] = changed[k] == "q" ? "r" : "q"
            var text = String.UnicodeScalarView()
            text.append(contentsOf: changed)
            let mutated = Self.spell(String(text)) { _ in mixer.next() }
            #expect(redactor.redact("a " + mutated + " b") == "a " + mutated + " b", "\(mutated)")
            var shorter = scalars
            shorter.remove(at: k)
            let dropped = Self.spell(String(String.UnicodeScalarView(shorter))) { _ in mixer.next() }
            #expect(redactor.redact("a " + dropped + " b") == "a " + dropped + " b", "\(dropped)")
        }
        let broken = "\\u073" + Self.key.dropFirst()
        #expect(redactor.redact(broken) == broken)
        let notHex = "\\u00g3" + Self.key.dropFirst()
        #expect(redactor.redact(notHex) == notHex)
    }

    /// A character beyond U+FFFF is escaped as a surrogate pair; `\" \\ \n \t` as their short escapes.
    @Test func surrogatePairsAndShortEscapesAreSpellingsToo() {
        let secret = "key-😀-\"quoted\"-back\\slash\n\ttab"
        let redactor = SecretRedactor(secrets: [secret])
        for spelling in [
            secret,
            #"key-\ud83d\ude00-\"quoted\"-back\\slash\n\ttab"#,
            #"KEY-\uD83D\uDE00-\u0022quoted\u0022-back\u005cslash\u000a\u0009tab"#,
        ] {
            #expect(redactor.redact("<" + spelling + ">") == "<<redacted>>", "\(spelling)")
        }
    }

    /// Streamed: an escaped key split at every point, in pieces of 1, 2, 5 and 13 bytes, never
    /// reaches a piece nor the join, and the join equals the redaction of the whole; a lone
    /// backslash that cannot begin the key (`\n`) goes on without waiting.
    @Test(arguments: [1, 2, 5, 13])
    func anEscapedKeyIsRedactedAsAStream(pieceLength: Int) {
        let redactor = SecretRedactor(secrets: [Self.key])
        var mixer = Mixer(state: UInt64(pieceLength))
        for prefix in 0..<6 {
            let whole = String(repeating: "ab", count: prefix) + "key " + Self.spell(Self.key) { _ in mixer.next() } + " \\n and " + Self.spell(Self.key) { _ in 1 } + " end"
            let scalars = Array(whole.unicodeScalars)
            var stream = StreamRedaction(redactor)
            var handed: [String] = []
            for start in stride(from: 0, to: scalars.count, by: pieceLength) {
                handed.append(stream.take(String(String.UnicodeScalarView(scalars[start..<min(start + pieceLength, scalars.count)]))))
            }
            handed.append(stream.finish())
            let joined = handed.joined()
            #expect(joined == redactor.redact(whole), "\(pieceLength)/\(prefix): \(joined)")
            #expect(joined.components(separatedBy: "<redacted>").count == 3, "\(joined)")
        }
        var stream = StreamRedaction(redactor)
        #expect(stream.take("a line\\n") == "a line\\n", "\\n cannot begin the key")
        #expect(stream.take("next \\") == "next ", "a backslash may begin \\u0073")
        #expect(stream.take("u00") == "")
        #expect(stream.take("41 no") == "\\u0041 no", "it was not the key after all")
    }
}
