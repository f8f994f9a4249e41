/// A strict RFC 8259 parser from UTF-8 bytes to `JSONValue`. It keeps object key order
/// and reports faults by byte offset, which `JSONDecoder` does not.
package struct JSONParser {
    /// A syntax error at a byte offset of the parsed buffer.
    package struct SyntaxError: Error, Sendable, Hashable {
        package var offset: Int
        package var message: String
        /// For a duplicate key: where the object is, as a command path (`plan.calls[0].config`).
        package var path: String?

        package init(offset: Int, message: String, path: String? = nil) {
            self.offset = offset
            self.message = message
            self.path = path
        }
    }

    /// What the parser checks beyond the grammar.
    package struct Options: OptionSet, Sendable {
        package let rawValue: Int
        package init(rawValue: Int) { self.rawValue = rawValue }
        /// Bytes in strings must be well-formed UTF-8 (else: an error at the first bad byte,
        /// instead of replacement characters).
        package static let validateUTF8 = Options(rawValue: 1)
        /// An object may not hold one key twice (else: an error naming the key and its path).
        package static let rejectDuplicateKeys = Options(rawValue: 2)
        /// A number beyond a `Double`'s range (`1e400`) is an error. Without it such a number
        /// is read as the largest finite `Double` of its sign, so a server's absurd usage count
        /// is clamped where it is read (like every other absurd number) instead of making a
        /// whole answer "not JSON".
        package static let rejectOutOfRangeNumbers = Options(rawValue: 4)
        /// All three: how the CLI reads commands and catalog files.
        package static let strict: Options = [.validateUTF8, .rejectDuplicateKeys, .rejectOutOfRangeNumbers]
    }

    package static let maximumDepth = 512

    /// Parses exactly one JSON value (surrounding white space allowed).
    package static func parse(_ bytes: UnsafeBufferPointer<UInt8>, options: Options = []) throws(SyntaxError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, options: options)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.index < bytes.count { throw parser.error("unexpected '\(parser.describe(bytes[parser.index]))' after the JSON value") }
        return value
    }

    package static func parse(_ bytes: [UInt8], options: Options = []) throws(SyntaxError) -> JSONValue {
        let result: Result<JSONValue, SyntaxError> = bytes.withUnsafeBufferPointer { buffer in
            do throws(SyntaxError) { return .success(try parse(buffer, options: options)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    package static func parse(_ text: String, options: Options = []) throws(SyntaxError) -> JSONValue { try parse(Array(text.utf8), options: options) }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private let validateUTF8: Bool
    private let rejectDuplicateKeys: Bool
    private let rejectOutOfRange: Bool

    private init(bytes: UnsafeBufferPointer<UInt8>, options: Options) {
        self.bytes = bytes
        validateUTF8 = options.contains(.validateUTF8)
        rejectDuplicateKeys = options.contains(.rejectDuplicateKeys)
        rejectOutOfRange = options.contains(.rejectOutOfRangeNumbers)
    }

    private func error(_ message: String, at offset: Int? = nil) -> SyntaxError {
        SyntaxError(offset: offset ?? index, message: message)
    }

    private func describe(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7f ? String(UnicodeScalar(byte)) : "\\u{\(String(byte, radix: 16))}"
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0a, 0x0d: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(SyntaxError) -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of input, expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        case let byte: throw error("unexpected '\(describe(byte))', expected a value")
        }
    }

    private mutating func literal(_ word: StaticString) throws(SyntaxError) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of input in a literal") }
        let start = word.utf8Start
        for i in 0..<count where bytes[index + i] != start[i] { throw error("invalid literal, expected '\(word)'") }
        index += count
    }

    private mutating func parseObject(depth: Int) throws(SyntaxError) -> JSONValue {
        if depth > Self.maximumDepth { throw error("nesting deeper than \(Self.maximumDepth) levels") }
        index += 1
        var members: [(key: String, value: JSONValue)] = []
        var seen: Set<String> = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(JSONObject(members))
        }
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in an object") }
            guard bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string key in an object, found '\(describe(bytes[index]))'") }
            let keyOffset = index
            let key = try parseString()
            if rejectDuplicateKeys && Self.contains(key, in: members, seen: &seen) {
                throw SyntaxError(offset: keyOffset, message: "duplicate key \"\(key)\" in an object; each key may appear once", path: key)
            }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':' after the object key \"\(key)\"") }
            index += 1
            skipWhitespace()
            let value: JSONValue
            do throws(SyntaxError) {
                value = try parseValue(depth: depth)
            } catch {
                throw Self.within(key: key, error)
            }
            members.append((key: key, value: value))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in an object") }
            switch bytes[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return .object(JSONObject(members))
            default: throw error("expected ',' or '}' in an object, found '\(describe(bytes[index]))'")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(SyntaxError) -> JSONValue {
        if depth > Self.maximumDepth { throw error("nesting deeper than \(Self.maximumDepth) levels") }
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            do throws(SyntaxError) {
                elements.append(try parseValue(depth: depth))
            } catch {
                throw Self.within(index: elements.count, error)
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input in an array") }
            switch bytes[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return .array(elements)
            default: throw error("expected ',' or ']' in an array, found '\(describe(bytes[index]))'")
            }
        }
    }

    private mutating func parseString() throws(SyntaxError) -> String {
        let start = index
        index += 1
        let contentStart = index
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[contentStart..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character in a string; escape it (e.g. \\n)") }
            if byte >= 0x80 && validateUTF8 { try skipUTF8Sequence(); continue }
            index += 1
        }
        guard index < bytes.count else { throw error("unterminated string", at: start) }
        var scratch = Array(UnsafeBufferPointer(rebasing: bytes[contentStart..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: scratch, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { break }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scratch.append(0x22)
                case UInt8(ascii: "\\"): scratch.append(0x5c)
                case UInt8(ascii: "/"): scratch.append(0x2f)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0c)
                case UInt8(ascii: "n"): scratch.append(0x0a)
                case UInt8(ascii: "r"): scratch.append(0x0d)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw error("lone high surrogate in a \\u escape")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate in a \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw error("lone low surrogate in a \\u escape")
                    }
                    scratch.append(contentsOf: String(Character(UnicodeScalar(scalar)!)).utf8)
                default: throw error("invalid escape '\\\(describe(escape))' in a string", at: index - 2)
                }
            default:
                if byte < 0x20 { throw error("control character in a string; escape it (e.g. \\n)") }
                if byte >= 0x80 && validateUTF8 {
                    let from = index
                    try skipUTF8Sequence()
                    scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[from..<index]))
                    continue
                }
                scratch.append(byte)
                index += 1
            }
        }
        throw error("unterminated string", at: start)
    }

    /// Checks the multi-byte UTF-8 sequence at `index` (Unicode 15, table 3-7: no overlong
    /// forms, no surrogates, nothing above U+10FFFF) and steps over it.
    private mutating func skipUTF8Sequence() throws(SyntaxError) {
        let first = bytes[index]
        let length: Int
        var low: UInt8 = 0x80, high: UInt8 = 0xBF   // range of the second byte
        switch first {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: throw error("invalid UTF-8: byte 0x\(String(first, radix: 16, uppercase: true)) cannot start a character")
        }
        for k in 1..<length {
            guard index + k < bytes.count else { throw error("invalid UTF-8: truncated character", at: index) }
            let byte = bytes[index + k]
            let (lo, hi) = k == 1 ? (low, high) : (UInt8(0x80), UInt8(0xBF))
            guard byte >= lo && byte <= hi else {
                throw error("invalid UTF-8: byte 0x\(String(byte, radix: 16, uppercase: true)) in the character starting at this offset", at: index)
            }
        }
        index += length
    }

    /// Whether `key` is among `members`: a scan for small objects, a set for large ones.
    private static func contains(_ key: String, in members: [(key: String, value: JSONValue)], seen: inout Set<String>) -> Bool {
        if members.count < 16 {
            for member in members where member.key == key { return true }
            return false
        }
        if seen.isEmpty { for member in members { seen.insert(member.key) } }
        return !seen.insert(key).inserted
    }

    /// A duplicate-key error found inside the value of `key`: its path gains the key.
    private static func within(key: String, _ error: SyntaxError) -> SyntaxError {
        guard let path = error.path else { return error }
        var error = error
        error.path = path.hasPrefix("[") ? key + path : key + "." + path
        return error
    }

    private static func within(index: Int, _ error: SyntaxError) -> SyntaxError {
        guard let path = error.path else { return error }
        var error = error
        error.path = path.hasPrefix("[") ? "[\(index)]" + path : "[\(index)]." + path
        return error
    }

    private mutating func hex4() throws(SyntaxError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit in a \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func parseNumber() throws(SyntaxError) -> JSONValue {
        let start = index
        var isInteger = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
            throw error("invalid number: expected a digit")
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                throw error("invalid number: leading zeros are not allowed")
            }
        } else {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
                throw error("invalid number: expected a digit after '.'")
            }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
                throw error("invalid number: expected a digit in the exponent")
            }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if isInteger, let int = Int(text) { return .int(int) }
        guard let double = Double(text) else { throw error("number out of range", at: start) }
        guard double.isFinite else {
            if rejectOutOfRange { throw error("number out of range", at: start) }
            return .double(double < 0 ? -Double.greatestFiniteMagnitude : Double.greatestFiniteMagnitude)
        }
        return .double(double)
    }
}
