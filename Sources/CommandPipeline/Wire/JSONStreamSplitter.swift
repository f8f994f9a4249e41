/// Splits a byte stream into top-level JSON values as `jq` reads them: JSON Lines,
/// pretty-printed values spanning lines, concatenated values, and the elements of a
/// top-level array (a list of commands). Input arrives in chunks of any size; memory
/// holds only the value being read.
///
/// Broken input is cut into pieces that each yield one error: bytes that cannot start a
/// value run until the next `{` or `[`; a value that breaks a line inside a string, or
/// meets a `{` at the start of a line while still open, is handed over as it is (its
/// parse then fails with a precise offset) and reading resumes there.
public struct JSONStreamSplitter {
    /// One piece of input: bytes to parse, where they started, and whether they are garbage.
    public struct Piece: Sendable {
        public var bytes: [UInt8]
        /// Byte offset of the first byte in the whole stream.
        public var offset: Int
        /// 1-based line of the first byte.
        public var line: Int
        /// Bytes that cannot start any JSON value.
        public var isGarbage: Bool

        /// Parses the piece; errors name the absolute byte offset and line.
        public func parse() -> Result<JSONValue, PieceError> {
            if isGarbage {
                let preview = String(decoding: bytes.prefix(40), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                return .failure(PieceError(offset: offset, line: line, message: "input is not JSON: unexpected text '\(preview)' at line \(line), byte offset \(offset)"))
            }
            do throws(JSONParser.SyntaxError) {
                return .success(try JSONParser.parse(bytes))
            } catch {
                let at = min(error.offset, bytes.count)
                let newlines = bytes[..<at].reduce(0) { $0 + ($1 == 0x0a ? 1 : 0) }
                let absolute = offset + at
                return .failure(PieceError(offset: absolute, line: line + newlines, message: "invalid JSON at line \(line + newlines), byte offset \(absolute): \(error.message)"))
            }
        }
    }

    public struct PieceError: Error, Sendable, Hashable {
        public var offset: Int
        public var line: Int
        public var message: String
    }

    private enum Mode {
        case between
        case container(depth: Int)
        case string            // a top-level string scalar
        case scalar            // a top-level number or literal
        case garbage
    }

    private var mode = Mode.between
    private var inArray = false
    private var inString = false
    private var escaped = false
    private var broken = false
    private var atLineStart = true
    private var current: [UInt8] = []
    private var start = 0
    private var startLine = 1
    private var offset = 0
    private var line = 1

    public init() {}

    /// Feeds the next chunk; `emit` receives every piece completed by it, in order.
    public mutating func feed(_ chunk: UnsafeBufferPointer<UInt8>, _ emit: (Piece) -> Void) {
        for byte in chunk {
            step(byte, emit)
            offset += 1
            if byte == 0x0a {
                line += 1
                atLineStart = true
            } else {
                atLineStart = false
            }
        }
    }

    public mutating func feed(_ bytes: [UInt8], _ emit: (Piece) -> Void) {
        bytes.withUnsafeBufferPointer { feed($0, emit) }
    }

    /// Ends the stream, emitting an unfinished value (its parse reports the truncation).
    public mutating func finish(_ emit: (Piece) -> Void) {
        switch mode {
        case .between: break
        case .garbage: emitCurrent(garbage: true, emit)
        default: emitCurrent(garbage: false, emit)
        }
        mode = .between
    }

    private mutating func begin(_ byte: UInt8, _ mode: Mode) {
        current.removeAll(keepingCapacity: true)
        current.append(byte)
        start = offset
        startLine = line
        inString = false
        escaped = false
        broken = false
        self.mode = mode
    }

    private mutating func emitCurrent(garbage: Bool, _ emit: (Piece) -> Void) {
        emit(Piece(bytes: current, offset: start, line: startLine, isGarbage: garbage))
        current.removeAll(keepingCapacity: true)
        mode = .between
    }

    private static func isWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0a || b == 0x0d || b == 0x09 }

    private mutating func startValue(_ byte: UInt8, _ emit: (Piece) -> Void) {
        switch byte {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            begin(byte, .container(depth: 1))
        case UInt8(ascii: "\""):
            begin(byte, .string)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            begin(byte, .scalar)
        default:
            begin(byte, .garbage)
        }
    }

    private mutating func step(_ byte: UInt8, _ emit: (Piece) -> Void) {
        switch mode {
        case .between:
            if Self.isWhitespace(byte) { return }
            if inArray {
                if byte == UInt8(ascii: ",") { return }
                if byte == UInt8(ascii: "]") { inArray = false; return }
            } else if byte == UInt8(ascii: "[") {
                inArray = true
                return
            }
            startValue(byte, emit)

        case .container(let depth):
            if byte == UInt8(ascii: "{") && atLineStart && (broken || !inString) && depth >= 1 {
                // An open value meets a new one at the start of a line: hand over the broken one.
                emitCurrent(garbage: false, emit)
                begin(byte, .container(depth: 1))
                return
            }
            current.append(byte)
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false } else if byte == 0x0a {
                    // A raw newline cannot be inside a JSON string: the value is broken.
                    inString = false
                    broken = true
                }
                return
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): mode = .container(depth: depth + 1)
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if depth == 1 { emitCurrent(garbage: false, emit) } else { mode = .container(depth: depth - 1) }
            default: break
            }

        case .string:
            current.append(byte)
            if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") || byte == 0x0a {
                emitCurrent(garbage: false, emit)
            }

        case .scalar:
            if Self.isWhitespace(byte) || byte == UInt8(ascii: ",") || byte == UInt8(ascii: "]") || byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                if (try? JSONParser.parse(current)) != nil {
                    emitCurrent(garbage: false, emit)
                } else {
                    // Not a number or literal after all (e.g. "this"): the run is garbage.
                    mode = .garbage
                }
                step(byte, emit)
            } else {
                current.append(byte)
            }

        case .garbage:
            if byte == UInt8(ascii: "{") || (byte == UInt8(ascii: "[") && !inArray) {
                emitCurrent(garbage: true, emit)
                step(byte, emit)
            } else {
                current.append(byte)
            }
        }
    }
}
