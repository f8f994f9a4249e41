/// Splits a byte stream into top-level JSON values as `jq` reads them: JSON Lines,
/// pretty-printed values in any layout, concatenated values, and the elements of a
/// top-level array (a list of commands). Input arrives in chunks of any size.
///
/// The splitter follows the JSON grammar as it goes (a small pushdown automaton: strings and
/// their escapes, numbers, literals, object and array structure), so valid JSON is cut
/// exactly where its values end, whatever its layout. Recovery starts only at a real syntax
/// error (Design/wire-format.md, "Input"):
///
/// - the broken value becomes one piece carrying the error (line, byte offset, reason) and a
///   short preview of its start instead of its bytes;
/// - reading resumes at the next line that can start a command: its first non-blank byte is
///   `{` or `[` (in a top-level array also `,` or `]`) at a column no greater than the broken
///   value's own column. The line of the offending byte counts when that byte opens it, so
///   `{"a":1` followed by a line `{"b":2}` keeps `{"b":2}`; the lines skipped belong to the
///   one broken piece (a pretty-printed broken value yields one record, not one per line);
/// - inside a top-level array, the array stays open, so its next elements still come out;
/// - text that cannot start a value is one piece (a garbage run, any number of lines) up to
///   the next line starting with `{` or `[`.
///
/// Memory is bounded: a value longer than `maximumValueBytes` becomes one error piece
/// without being held whole (its structure is still followed to find its end), a garbage run
/// keeps a preview of `previewBytes`, and nesting deeper than `maximumDepth` is an error.
/// A UTF-8 byte order mark at the very start is skipped. Bytes inside strings are not
/// checked here: `Piece.parse()` (off the reading thread) rejects invalid UTF-8 and
/// duplicate keys with a precise offset.
package struct JSONStreamSplitter {
    /// The largest value (one command) held in memory: 64 MiB.
    package static let maximumValueBytes = 64 << 20
    /// Containers nested deeper than this are an error (the parser's limit).
    package static let maximumDepth = JSONParser.maximumDepth
    /// How much of a broken value or a garbage run an error piece keeps.
    package static let previewBytes = 64

    /// One piece of input: a value's bytes to parse, or a broken value with its error.
    package struct Piece: Sendable {
        /// The value's bytes; for a broken value, a preview of its start.
        package var bytes: [UInt8]
        /// Byte offset of the first byte in the whole stream.
        package var offset: Int
        /// 1-based line of the first byte.
        package var line: Int
        /// Set when the splitter found the value broken (syntax, truncation, size).
        package var error: PieceError?

        package init(bytes: [UInt8], offset: Int, line: Int, error: PieceError? = nil) {
            self.bytes = bytes
            self.offset = offset
            self.line = line
            self.error = error
        }

        /// Parses the piece strictly (valid UTF-8, unique keys); errors name the absolute byte
        /// offset and line, and for a duplicate key its path.
        package func parse() -> Result<JSONValue, PieceError> {
            if let error { return .failure(error) }
            do throws(JSONParser.SyntaxError) {
                return .success(try JSONParser.parse(bytes, options: .strict))
            } catch {
                let at = min(error.offset, bytes.count)
                var newlines = 0
                for byte in bytes[..<at] where byte == 0x0a { newlines += 1 }
                let absolute = offset + at
                return .failure(PieceError(
                    offset: absolute, line: line + newlines,
                    message: "invalid JSON at line \(line + newlines), byte offset \(absolute): \(error.message)\(error.path.map { " (at \($0))" } ?? "")",
                    path: error.path))
            }
        }
    }

    package struct PieceError: Error, Sendable, Hashable {
        package var offset: Int
        package var line: Int
        package var message: String
        /// Where in the value the fault is (duplicate keys), as a command path.
        package var path: String?

        package init(offset: Int, line: Int, message: String, path: String? = nil) {
            self.offset = offset
            self.line = line
            self.message = message
            self.path = path
        }
    }

    private enum State: UInt8 {
        case between          // top level: no value open
        case skipLine         // recovering: skip to the end of the line
        case lineStart        // recovering: at the start of a line, does it start a command?
        case skipElement      // recovering inside a top-level array: to the element's `,` or `]`
        case skipElementString
        case skipElementEscape
        case value            // in a container: a value (after ':' or an array's ',')
        case arrayFirst       // after '[': a value or ']'
        case objectFirst      // after '{': a key or '}'
        case objectKey        // after an object's ',': a key
        case colon            // after a key: ':'
        case afterValue       // in a container after a value: ',' or the closer
        case string
        case stringEscape
        case stringHex
        case numMinus         // '-'
        case numZero          // '0' (complete)
        case numInt           // integer digits (complete)
        case numDot           // '.'
        case numFrac          // fraction digits (complete)
        case numExp           // 'e'
        case numExpSign       // 'e+' / 'e-'
        case numExpDigits     // exponent digits (complete)
        case literal          // inside true / false / null
        case scalarEnd        // a literal just ended: the next byte must be a delimiter
        case bom              // inside a leading byte order mark
    }

    private static let literals: [[UInt8]] = [Array("true".utf8), Array("false".utf8), Array("null".utf8)]

    private var state = State.between
    /// Open containers of the current value: true for an object, false for an array.
    private var stack: [Bool] = []
    private var stringIsKey = false
    private var hexLeft = 0
    private var literalWord = 0
    private var literalPosition = 0
    private var tokenOffset = 0
    private var tokenLine = 1
    /// Inside a top-level array whose elements are the values.
    private var inArray = false

    /// Bytes of the open value from earlier chunks (the current chunk's part is appended at its end).
    private var current: [UInt8] = []
    private var oversized = false
    private var start = 0
    private var startLine = 1
    /// The garbage run being skipped, reported when its line ends.
    private var garbage: (preview: [UInt8], offset: Int, line: Int)?

    private var offset = 0        // of the current chunk's first byte
    private var line = 1
    private var lineStartOffset = 0
    private var atLineStart = true
    private var startColumn = 0
    /// While recovering: the largest column at which `{` or `[` starts the next value.
    private var resumeColumn = Int.max
    /// While recovering a broken element of a top-level array: containers still open in it.
    private var skipDepth = 0
    /// A line that does not start a command sends recovery back to the element, not the line.
    private var skippingElement = false

    /// The largest value this splitter holds (`maximumValueBytes` unless a test asks for less).
    private let valueLimit: Int

    package init(maximumValueBytes: Int = JSONStreamSplitter.maximumValueBytes) {
        valueLimit = max(maximumValueBytes, 1)
    }

    /// Feeds the next chunk; `emit` receives every piece completed by it, in order.
    package mutating func feed(_ chunk: UnsafeBufferPointer<UInt8>, _ emit: (Piece) -> Void) {
        guard let base = chunk.baseAddress else { return }
        if offset == 0 && chunk.count > 0 && chunk[0] == 0xEF && state == .between { state = .bom }
        let n = chunk.count
        var i = 0
        // Where the open value's bytes begin in this chunk (when a value is open).
        var segment = 0

        /// The open value's bytes up to `end` (exclusive) of this chunk.
        func valueBytes(_ s: inout JSONStreamSplitter, to end: Int) -> [UInt8] {
            if s.current.isEmpty { return Array(UnsafeBufferPointer(start: base + segment, count: end - segment)) }
            s.current.append(contentsOf: UnsafeBufferPointer(start: base + segment, count: end - segment))
            let bytes = s.current
            s.resetCurrent()
            return bytes
        }

        func begin(_ s: inout JSONStreamSplitter, at i: Int) {
            s.start = s.offset + i
            s.startLine = s.line
            s.startColumn = s.start - s.lineStartOffset
            s.oversized = false
            s.stack.removeAll(keepingCapacity: true)
            segment = i
        }

        /// A value ended just before `end`: emit it at the top level, or go on in its container.
        func valueDone(_ s: inout JSONStreamSplitter, end: Int) {
            if !s.stack.isEmpty {
                s.state = .afterValue
                return
            }
            s.state = .between
            if s.oversized || s.current.count + (end - segment) > s.valueLimit {
                let preview = preview(&s, to: end)
                emit(Piece(bytes: preview, offset: s.start, line: s.startLine, error: PieceError(
                    offset: s.start, line: s.startLine,
                    message: "value at line \(s.startLine), byte offset \(s.start) is larger than \(Self.describeSize(s.valueLimit)), the limit of one command")))
                s.oversized = false
                return
            }
            emit(Piece(bytes: valueBytes(&s, to: end), offset: s.start, line: s.startLine))
        }

        /// The first `previewBytes` of the open value up to `end`; forgets the value's bytes.
        func preview(_ s: inout JSONStreamSplitter, to end: Int) -> [UInt8] {
            var bytes = Array(s.current.prefix(Self.previewBytes))
            let more = min(end - segment, Self.previewBytes - bytes.count)
            if more > 0 { bytes.append(contentsOf: UnsafeBufferPointer(start: base + segment, count: more)) }
            s.resetCurrent()
            return bytes
        }

        /// A syntax error found at byte `i` (reported at `at`/`atLine`): emit the broken value and
        /// recover. The byte at `i` is not consumed: it is read again by the recovery states.
        func fail(_ s: inout JSONStreamSplitter, _ reason: String, i: Int, at: Int? = nil, atLine: Int? = nil) {
            let reportOffset = at ?? (s.offset + i)
            let reportLine = atLine ?? s.line
            let bytes = preview(&s, to: i)
            let depth = s.stack.count
            s.stack.removeAll(keepingCapacity: true)
            s.oversized = false
            emit(Piece(bytes: bytes, offset: s.start, line: s.startLine, error: PieceError(
                offset: reportOffset, line: reportLine, message: "invalid JSON at line \(reportLine), byte offset \(reportOffset): \(reason)")))
            // The offending byte's line is a candidate when the byte opens it; else the next line.
            // Inside a top-level array the element's own `,` or `]` ends it too, so the next
            // elements on the same line (`json.dumps` of a list is one line) still come out.
            s.resumeColumn = s.startColumn
            s.skippingElement = s.inArray
            s.skipDepth = depth
            if base[i] == 0x0a || s.atLineStart {
                s.state = .lineStart
            } else {
                s.state = s.inArray ? .skipElement : .skipLine
            }
        }

        func startValue(_ s: inout JSONStreamSplitter, _ byte: UInt8, at i: Int) -> Bool {
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if s.stack.count >= Self.maximumDepth { return false }
                s.stack.append(byte == UInt8(ascii: "{"))
                s.state = byte == UInt8(ascii: "{") ? .objectFirst : .arrayFirst
            case UInt8(ascii: "\""):
                s.stringIsKey = false
                s.state = .string
            case UInt8(ascii: "-"): s.token(at: i); s.state = .numMinus
            case UInt8(ascii: "0"): s.token(at: i); s.state = .numZero
            case UInt8(ascii: "1")...UInt8(ascii: "9"): s.token(at: i); s.state = .numInt
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                s.token(at: i)
                s.literalWord = byte == UInt8(ascii: "t") ? 0 : byte == UInt8(ascii: "f") ? 1 : 2
                s.literalPosition = 1
                s.state = .literal
            default: return false
            }
            return true
        }

        func expectedValue(_ byte: UInt8) -> String {
            "expected a value, found \(Self.describe(byte))"
        }

        while i < n {
            let byte = base[i]
            switch state {
            case .string:
                // The hot path: run through plain string bytes.
                var j = i
                while j < n {
                    let b = base[j]
                    if b == 0x22 || b == 0x5c || b < 0x20 { break }
                    j += 1
                }
                i = j
                if i == n { continue }
                let b = base[i]
                if b == 0x22 {
                    i += 1
                    if stringIsKey { state = .colon } else { valueDone(&self, end: i) }
                } else if b == 0x5c {
                    i += 1
                    state = .stringEscape
                } else {
                    fail(&self, b == 0x0a ? "line break inside a string (unterminated string?)" : "control character \(Self.describe(b)) in a string; escape it", i: i)
                }
                continue

            case .between:
                if Self.isWhitespace(byte) { break }
                atLineStart = false
                if inArray {
                    if byte == UInt8(ascii: ",") { i += 1; continue }
                    if byte == UInt8(ascii: "]") { inArray = false; i += 1; continue }
                } else if byte == UInt8(ascii: "[") {
                    inArray = true
                    i += 1
                    continue
                }
                begin(&self, at: i)
                if startValue(&self, byte, at: i) {
                    i += 1
                } else {
                    // Text that cannot start a value: a garbage run, reported when its first line ends.
                    garbage = ([], offset + i, line)
                    resumeColumn = Int.max
                    state = .skipLine
                }
                continue

            case .skipLine:
                // Skip to the end of the line, keeping a preview of a garbage run.
                var j = i
                while j < n && base[j] != 0x0a { j += 1 }
                if var run = garbage, run.preview.count < Self.previewBytes {
                    run.preview.append(contentsOf: UnsafeBufferPointer(start: base + i, count: min(j - i, Self.previewBytes - run.preview.count)))
                    garbage = run
                }
                i = j
                if i < n {
                    emitGarbage(emit)
                    state = .lineStart
                }
                continue

            case .lineStart:
                if Self.isWhitespace(byte) { break }
                let column = offset + i - lineStartOffset
                let opens = byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[")
                    || (inArray && (byte == UInt8(ascii: "]") || byte == UInt8(ascii: ",")))
                if opens && column <= resumeColumn {
                    atLineStart = true
                    skippingElement = false
                    state = .between
                } else {
                    state = skippingElement ? .skipElement : .skipLine
                }
                continue

            case .skipElement:
                // Follows the broken element's brackets (strings skipped) to its end at depth 0.
                switch byte {
                case 0x0a:
                    state = .lineStart
                    continue
                case UInt8(ascii: "\""): state = .skipElementString
                case UInt8(ascii: "{"), UInt8(ascii: "["): skipDepth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if skipDepth > 0 {
                        skipDepth -= 1
                    } else if byte == UInt8(ascii: "]") {
                        skippingElement = false
                        state = .between   // closes the top-level array, read again there
                        continue
                    }
                case UInt8(ascii: ","):
                    if skipDepth == 0 {
                        skippingElement = false
                        state = .between   // the next element follows, read again there
                        continue
                    }
                default: break
                }

            case .skipElementString:
                if byte == 0x0a {
                    state = .lineStart     // a line break cannot be inside a string: it ended broken
                    continue
                }
                if byte == UInt8(ascii: "\\") { state = .skipElementEscape } else if byte == UInt8(ascii: "\"") { state = .skipElement }

            case .skipElementEscape:
                if byte == 0x0a {
                    state = .lineStart
                    continue
                }
                state = .skipElementString

            case .bom:
                let expected: [UInt8] = [0xEF, 0xBB, 0xBF]
                let position = offset + i
                if position < 3 && byte == expected[position] {
                    if position == 2 { state = .between }
                    i += 1
                    continue
                }
                // Not a byte order mark after all: the start is garbage.
                garbage = (Array(expected[0..<position]), 0, 1)
                resumeColumn = Int.max
                atLineStart = false
                state = .skipLine
                continue

            case .value, .arrayFirst:
                if Self.isWhitespace(byte) { break }
                let wasLineStart = atLineStart
                atLineStart = false
                if state == .arrayFirst && byte == UInt8(ascii: "]") {
                    stack.removeLast()
                    i += 1
                    valueDone(&self, end: i)
                    continue
                }
                if startValue(&self, byte, at: i) {
                    i += 1
                } else {
                    atLineStart = wasLineStart
                    fail(&self, stack.count >= Self.maximumDepth && (byte == UInt8(ascii: "{") || byte == UInt8(ascii: "["))
                         ? "nesting deeper than \(Self.maximumDepth) levels" : expectedValue(byte), i: i)
                }
                continue

            case .objectFirst, .objectKey:
                if Self.isWhitespace(byte) { break }
                if byte == UInt8(ascii: "\"") {
                    atLineStart = false
                    stringIsKey = true
                    state = .string
                    i += 1
                } else if byte == UInt8(ascii: "}") && state == .objectFirst {
                    atLineStart = false
                    stack.removeLast()
                    i += 1
                    valueDone(&self, end: i)
                } else {
                    fail(&self, "expected a string key\(state == .objectFirst ? " or '}'" : "") in an object, found \(Self.describe(byte))", i: i)
                }
                continue

            case .colon:
                if Self.isWhitespace(byte) { break }
                if byte == UInt8(ascii: ":") {
                    atLineStart = false
                    state = .value
                    i += 1
                } else {
                    fail(&self, "expected ':' after an object key, found \(Self.describe(byte))", i: i)
                }
                continue

            case .afterValue:
                if Self.isWhitespace(byte) { break }
                let inObject = stack[stack.count - 1]
                if byte == UInt8(ascii: ",") {
                    atLineStart = false
                    state = inObject ? .objectKey : .value
                    i += 1
                } else if byte == (inObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    atLineStart = false
                    stack.removeLast()
                    i += 1
                    valueDone(&self, end: i)
                } else {
                    fail(&self, inObject ? "expected ',' or '}' in an object, found \(Self.describe(byte))" : "expected ',' or ']' in an array, found \(Self.describe(byte))", i: i)
                }
                continue

            case .stringEscape:
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    state = .string
                    i += 1
                case UInt8(ascii: "u"):
                    hexLeft = 4
                    state = .stringHex
                    i += 1
                default:
                    fail(&self, byte == 0x0a ? "line break after '\\' in a string (unterminated string?)"
                         : "invalid escape '\\\(Self.describe(byte, quoted: false))' in a string", i: i)
                }
                continue

            case .stringHex:
                if Self.isHexDigit(byte) {
                    hexLeft -= 1
                    if hexLeft == 0 { state = .string }
                    i += 1
                } else {
                    fail(&self, "invalid hex digit \(Self.describe(byte)) in a \\u escape", i: i)
                }
                continue

            case .numMinus:
                if byte == UInt8(ascii: "0") { state = .numZero; i += 1; continue }
                if Self.isDigit(byte) { state = .numInt; i += 1; continue }
                failToken(&self, "invalid number: expected a digit after '-'", i: i)
                continue
            case .numZero:
                if byte == UInt8(ascii: ".") { state = .numDot; i += 1; continue }
                if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") { state = .numExp; i += 1; continue }
                if Self.isDigit(byte) { failToken(&self, "invalid number: leading zeros are not allowed", i: i); continue }
                scalarEnded(&self, byte, i: i)
                continue
            case .numInt:
                var j = i
                while j < n && Self.isDigit(base[j]) { j += 1 }
                i = j
                if i == n { continue }
                let b = base[i]
                if b == UInt8(ascii: ".") { state = .numDot; i += 1; continue }
                if b == UInt8(ascii: "e") || b == UInt8(ascii: "E") { state = .numExp; i += 1; continue }
                scalarEnded(&self, b, i: i)
                continue
            case .numDot:
                if Self.isDigit(byte) { state = .numFrac; i += 1; continue }
                failToken(&self, "invalid number: expected a digit after '.'", i: i)
                continue
            case .numFrac:
                if Self.isDigit(byte) { i += 1; continue }
                if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") { state = .numExp; i += 1; continue }
                scalarEnded(&self, byte, i: i)
                continue
            case .numExp:
                if byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") { state = .numExpSign; i += 1; continue }
                if Self.isDigit(byte) { state = .numExpDigits; i += 1; continue }
                failToken(&self, "invalid number: expected a digit in the exponent", i: i)
                continue
            case .numExpSign:
                if Self.isDigit(byte) { state = .numExpDigits; i += 1; continue }
                failToken(&self, "invalid number: expected a digit in the exponent", i: i)
                continue
            case .numExpDigits:
                if Self.isDigit(byte) { i += 1; continue }
                scalarEnded(&self, byte, i: i)
                continue

            case .literal:
                let word = Self.literals[literalWord]
                if byte == word[literalPosition] {
                    literalPosition += 1
                    if literalPosition == word.count { state = .scalarEnd }
                    i += 1
                } else {
                    failToken(&self, "invalid literal, expected '\(String(decoding: word, as: UTF8.self))'", i: i)
                }
                continue

            case .scalarEnd:
                scalarEnded(&self, byte, i: i)
                continue
            }
            // White space in a structural state.
            if byte == 0x0a {
                line += 1
                lineStartOffset = offset + i + 1
                atLineStart = true
            }
            i += 1
        }

        /// A number or literal followed by `byte`: it ends there if `byte` delimits it.
        func scalarEnded(_ s: inout JSONStreamSplitter, _ byte: UInt8, i: Int) {
            if Self.isDelimiter(byte) {
                valueDone(&s, end: i)   // `byte` is read again in the new state
            } else {
                failToken(&s, "invalid \(s.state == .scalarEnd ? "literal" : "number"): unexpected \(Self.describe(byte)) after it", i: i)
            }
        }

        /// A number or literal is broken at byte `i`: reported at the token's start.
        func failToken(_ s: inout JSONStreamSplitter, _ reason: String, i: Int) {
            if s.stack.isEmpty {
                // A bad word at the top level ("this is not json"): a garbage run, shown as text.
                s.garbage = (preview(&s, to: i), s.start, s.startLine)
                s.resumeColumn = Int.max
                s.state = .skipLine
                return
            }
            fail(&s, reason, i: i, at: s.tokenOffset, atLine: s.tokenLine)
        }

        // Keep the open value's bytes from this chunk.
        if isOpen {
            if !oversized {
                let tail = n - segment
                if current.count + tail > valueLimit {
                    current = Array(current.prefix(Self.previewBytes)) + Array(UnsafeBufferPointer(start: base + segment, count: min(tail, max(0, Self.previewBytes - current.count))))
                    oversized = true
                } else {
                    current.append(contentsOf: UnsafeBufferPointer(start: base + segment, count: tail))
                }
            }
        }
        offset += n
    }

    package mutating func feed(_ bytes: [UInt8], _ emit: (Piece) -> Void) {
        bytes.withUnsafeBufferPointer { feed($0, emit) }
    }

    /// Ends the stream: an unfinished value is reported as truncated; a top-level number or
    /// literal at the very end is complete.
    package mutating func finish(_ emit: (Piece) -> Void) {
        switch state {
        case .between, .skipElement, .skipElementString, .skipElementEscape: break
        case .skipLine, .lineStart, .bom:
            if state == .bom { garbage = (Array([0xEF, 0xBB, 0xBF].prefix(offset)), 0, 1) }
            emitGarbage(emit)
        case .numZero, .numInt, .numFrac, .numExpDigits, .scalarEnd:
            if stack.isEmpty {
                let bytes = current
                resetCurrent()
                if oversized {
                    emit(Piece(bytes: Array(bytes.prefix(Self.previewBytes)), offset: start, line: startLine, error: PieceError(
                        offset: start, line: startLine,
                        message: "value at line \(startLine), byte offset \(start) is larger than \(Self.describeSize(valueLimit)), the limit of one command")))
                } else {
                    emit(Piece(bytes: bytes, offset: start, line: startLine))
                }
                break
            }
            fallthrough
        default:
            let preview = Array(current.prefix(Self.previewBytes))
            resetCurrent()
            emit(Piece(bytes: preview, offset: start, line: startLine, error: PieceError(
                offset: offset, line: line,
                message: "invalid JSON at line \(line), byte offset \(offset): unexpected end of input (the value starting at line \(startLine), byte offset \(start) is truncated)")))
        }
        state = .between
        stack.removeAll()
        inArray = false
    }

    // MARK: - Helpers

    private var isOpen: Bool {
        switch state {
        case .between, .skipLine, .lineStart, .skipElement, .skipElementString, .skipElementEscape, .bom: false
        default: true
        }
    }

    private mutating func token(at i: Int) {
        tokenOffset = offset + i
        tokenLine = line
    }

    private mutating func resetCurrent() {
        if current.capacity > 1 << 20 { current = [] } else { current.removeAll(keepingCapacity: true) }
    }

    private mutating func emitGarbage(_ emit: (Piece) -> Void) {
        guard let run = garbage else { return }
        garbage = nil
        var text = Substring(String(decoding: run.preview, as: UTF8.self))
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        emit(Piece(bytes: run.preview, offset: run.offset, line: run.line, error: PieceError(
            offset: run.offset, line: run.line,
            message: "input is not JSON: unexpected text '\(text)' at line \(run.line), byte offset \(run.offset)")))
    }

    @inline(__always) private static func isWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0a || b == 0x0d || b == 0x09 }
    @inline(__always) private static func isDigit(_ b: UInt8) -> Bool { b &- UInt8(ascii: "0") < 10 }
    private static func isHexDigit(_ b: UInt8) -> Bool {
        isDigit(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(b)
    }
    /// Bytes that end a number or literal (jq's token delimiters).
    private static func isDelimiter(_ b: UInt8) -> Bool {
        switch b {
        case 0x20, 0x0a, 0x0d, 0x09, UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: ":"),
             UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: "\""): true
        default: false
        }
    }

    static func describeSize(_ bytes: Int) -> String {
        bytes >= 1 << 20 && bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes) bytes"
    }

    static func describe(_ byte: UInt8, quoted: Bool = true) -> String {
        let text = byte >= 0x20 && byte < 0x7f ? String(UnicodeScalar(byte)) : "\\u{\(String(byte, radix: 16))}"
        if !quoted { return text }
        return byte == 0x0a ? "a line break" : "'\(text)'"
    }
}
