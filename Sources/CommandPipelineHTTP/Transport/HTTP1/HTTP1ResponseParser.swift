import Foundation

/// An incremental HTTP/1.1 response parser: bytes in, in pieces split anywhere; head, body
/// pieces and the end out. Pure (no I/O), so every framing rule is tested byte by byte.
///
/// Every number from the wire is range-checked where it is read: the status is three digits,
/// `Content-Length` is digits only (a list of equal values at most) and at most the body cap,
/// a chunk size is at most 16 hex digits and never takes the body past the cap. Nothing traps:
/// a malformed head or framing is a `Failure`, and so is a body past the cap.
struct HTTP1ResponseParser {
    enum Event {
        /// The final head (informational `1xx` heads are skipped). Header names lowercased,
        /// repeated headers joined with ", ".
        case head(status: Int, headers: [String: String])
        /// A piece of the body, valid only during the callback.
        case body(UnsafeBufferPointer<UInt8>)
        /// The response is complete.
        case end
    }

    enum Failure: Error, Equatable, CustomStringConvertible {
        /// The head or the body's framing breaks the protocol.
        case malformed(String)
        /// The head is larger than `maxHeadBytes`.
        case headTooLarge
        /// The body (or its declared length) passed the cap.
        case bodyTooLarge(declared: Int64?)
        /// The input ended before the response did.
        case truncated

        var description: String {
            switch self {
            case .malformed(let what): "malformed HTTP response: \(what)"
            case .headTooLarge: "the response head is larger than \(HTTP1ResponseParser.maxHeadBytes) bytes"
            case .bodyTooLarge(let declared?): "the response declares \(declared) bytes, more than the limit"
            case .bodyTooLarge(nil): "the response body passed the limit"
            case .truncated: "the connection closed before the response was complete"
            }
        }
    }

    private enum State {
        case head
        case lengthBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    static let maxHeadBytes = 64 * 1024
    static let maxLineBytes = 4 * 1024

    private var state = State.head
    /// The head, or the current chunk-size / trailer line, as it accumulates.
    private var line: [UInt8] = []
    private var trailerBytes = 0
    let maxBodyBytes: Int
    let requestIsHead: Bool
    /// Body bytes delivered so far.
    private(set) var bodyBytes = 0
    /// Whether the connection may carry another request after this response.
    private(set) var keepAlive = true
    /// Whether the final head has been delivered.
    private(set) var sawHead = false
    var isDone: Bool { if case .done = state { true } else { false } }

    init(maxBodyBytes: Int, requestIsHead: Bool = false) {
        self.maxBodyBytes = max(0, maxBodyBytes)
        self.requestIsHead = requestIsHead
        line.reserveCapacity(512)
    }

    /// Feeds `input`; calls `emit` for each event in order. Bytes after the end of the response
    /// make the connection unfit for another request.
    mutating func consume(_ input: UnsafeBufferPointer<UInt8>, _ emit: (Event) throws -> Void) throws {
        var index = 0
        let count = input.count
        while index < count {
            switch state {
            case .head:
                while index < count {
                    let byte = input[index]
                    index += 1
                    line.append(byte)
                    if byte == 10, endsHead() {
                        try finishHead(emit)
                        break
                    }
                    if line.count > Self.maxHeadBytes { throw Failure.headTooLarge }
                }
            case .lengthBody(let remaining):
                let n = min(remaining, count - index)
                try deliver(UnsafeBufferPointer(rebasing: input[index..<(index + n)]), emit)
                index += n
                if remaining - n == 0 {
                    state = .done
                    try emit(.end)
                } else {
                    state = .lengthBody(remaining: remaining - n)
                }
            case .chunkSize:
                while index < count {
                    let byte = input[index]
                    index += 1
                    if byte == 10 {
                        try finishChunkSize(emit)
                        break
                    }
                    line.append(byte)
                    if line.count > Self.maxLineBytes { throw Failure.malformed("a chunk-size line longer than \(Self.maxLineBytes) bytes") }
                }
            case .chunkData(let remaining):
                let n = min(remaining, count - index)
                try deliver(UnsafeBufferPointer(rebasing: input[index..<(index + n)]), emit)
                index += n
                state = remaining - n == 0 ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            case .chunkDataEnd:
                // CRLF (or a bare LF) after the chunk's data.
                let byte = input[index]
                index += 1
                if byte == 10 {
                    if !(line.isEmpty || line == [13]) { throw Failure.malformed("no CRLF after a chunk's data") }
                    line.removeAll(keepingCapacity: true)
                    state = .chunkSize
                } else if byte == 13 && line.isEmpty {
                    line.append(13)
                } else {
                    throw Failure.malformed("no CRLF after a chunk's data")
                }
            case .trailers:
                while index < count {
                    let byte = input[index]
                    index += 1
                    trailerBytes += 1
                    if trailerBytes > Self.maxHeadBytes { throw Failure.headTooLarge }
                    if byte == 10 {
                        let empty = line.isEmpty || line == [13]
                        line.removeAll(keepingCapacity: true)
                        if empty {
                            state = .done
                            try emit(.end)
                            break
                        }
                    } else {
                        line.append(byte)
                    }
                }
            case .untilClose:
                try deliver(UnsafeBufferPointer(rebasing: input[index..<count]), emit)
                index = count
            case .done:
                // Bytes nobody asked for: the connection's framing can no longer be trusted.
                keepAlive = false
                return
            }
        }
    }

    /// The input ended (the peer closed). A body framed by the close ends here; anything else is truncated.
    mutating func endOfInput(_ emit: (Event) throws -> Void) throws {
        switch state {
        case .untilClose:
            state = .done
            try emit(.end)
        case .done: return
        default: throw Failure.truncated
        }
    }

    private mutating func deliver(_ piece: UnsafeBufferPointer<UInt8>, _ emit: (Event) throws -> Void) throws {
        guard !piece.isEmpty else { return }
        let (total, overflow) = bodyBytes.addingReportingOverflow(piece.count)
        guard !overflow, total <= maxBodyBytes else { throw Failure.bodyTooLarge(declared: nil) }
        bodyBytes = total
        try emit(.body(piece))
    }

    /// The head ends at an empty line: CRLF CRLF (or LF LF).
    private func endsHead() -> Bool {
        let n = line.count
        if n >= 2 && line[n - 2] == 10 { return true }
        return n >= 4 && line[n - 2] == 13 && line[n - 3] == 10 && line[n - 4] == 13
    }

    private mutating func finishHead(_ emit: (Event) throws -> Void) throws {
        let (status, version1_0, headers) = try Self.parseHead(line)
        line.removeAll(keepingCapacity: true)
        if (100..<200).contains(status) {
            // 101 would switch protocols, which was never asked for; other 1xx are skipped.
            if status == 101 { throw Failure.malformed("an unrequested protocol switch (101)") }
            return
        }
        let connection = headers["connection"].map { Self.tokens($0) } ?? []
        keepAlive = version1_0 ? connection.contains("keep-alive") : !connection.contains("close")
        sawHead = true
        try emit(.head(status: status, headers: headers))
        if requestIsHead || status == 204 || status == 304 {
            state = .done
            try emit(.end)
            return
        }
        if let codings = headers["transfer-encoding"] {
            // Transfer-Encoding wins over Content-Length; without chunked last, the close ends the body.
            if Self.tokens(codings).last == "chunked" {
                state = .chunkSize
            } else {
                keepAlive = false
                state = .untilClose
            }
            if headers["content-length"] != nil { keepAlive = false }
            return
        }
        if let declared = headers["content-length"] {
            let length = try Self.contentLength(declared)
            guard length <= Int64(maxBodyBytes) else { throw Failure.bodyTooLarge(declared: length) }
            if length == 0 {
                state = .done
                try emit(.end)
            } else {
                state = .lengthBody(remaining: Int(length))
            }
            return
        }
        keepAlive = false
        state = .untilClose
    }

    private mutating func finishChunkSize(_ emit: (Event) throws -> Void) throws {
        var digits = 0
        var size = 0
        for byte in line {
            let value: Int
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = Int(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = Int(byte - UInt8(ascii: "a")) + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = Int(byte - UInt8(ascii: "A")) + 10
            case UInt8(ascii: ";"), UInt8(ascii: " "), UInt8(ascii: "\t"), 13: value = -1
            default: throw Failure.malformed("a chunk size that is not hexadecimal")
            }
            if value < 0 { break }
            digits += 1
            // 15 hex digits stay far below Int.max; the cap check follows.
            guard digits <= 15 else { throw Failure.bodyTooLarge(declared: nil) }
            size = size << 4 | value
        }
        guard digits > 0 else { throw Failure.malformed("an empty chunk size") }
        line.removeAll(keepingCapacity: true)
        if size == 0 {
            state = .trailers
            trailerBytes = 0
            return
        }
        guard size <= maxBodyBytes - bodyBytes else { throw Failure.bodyTooLarge(declared: nil) }
        state = .chunkData(remaining: size)
    }

    /// Status, whether the version is 1.0, and the headers.
    static func parseHead(_ bytes: [UInt8]) throws -> (Int, Bool, [String: String]) {
        var lines = bytes.split(separator: 10, omittingEmptySubsequences: false).map { line -> ArraySlice<UInt8> in
            line.last == 13 ? line.dropLast() : line
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let statusLine = lines.first else { throw Failure.malformed("an empty head") }
        // "HTTP/1.1 200 OK": the version, a space, three digits, then a space or the end.
        let s = Array(statusLine)
        guard s.count >= 12, s.starts(with: Array("HTTP/1.".utf8)), s[7] == UInt8(ascii: "0") || s[7] == UInt8(ascii: "1"),
            s[8] == UInt8(ascii: " "), s[9...11].allSatisfy({ (48...57).contains($0) }), s.count == 12 || s[12] == UInt8(ascii: " ")
        else {
            throw Failure.malformed("a status line that is not \"HTTP/1.x NNN …\"")
        }
        let status = s[9...11].reduce(0) { $0 * 10 + Int($1 - 48) }
        guard status >= 100 else { throw Failure.malformed("status \(status)") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let first = line.first else { throw Failure.malformed("an empty line inside the head") }
            if first == 32 || first == 9 { throw Failure.malformed("a folded header line") }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex else {
                throw Failure.malformed("a header line without a name")
            }
            let nameBytes = line[line.startIndex..<colon]
            guard nameBytes.allSatisfy(isTokenByte) else { throw Failure.malformed("a header name with forbidden characters") }
            var value = line[(colon + 1)...]
            while let b = value.first, b == 32 || b == 9 { value = value.dropFirst() }
            while let b = value.last, b == 32 || b == 9 { value = value.dropLast() }
            let name = String(decoding: nameBytes.map { (65...90).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
            let text = String(decoding: value, as: UTF8.self)
            if let existing = headers[name] { headers[name] = existing + ", " + text } else { headers[name] = text }
        }
        return (status, s[7] == UInt8(ascii: "0"), headers)
    }

    /// `Content-Length`: digits only; a list must repeat one value.
    static func contentLength(_ value: String) throws -> Int64 {
        var result: Int64?
        for part in value.split(separator: ",", omittingEmptySubsequences: false) {
            let digits = part.utf8.drop { $0 == 32 || $0 == 9 }.reversed().drop { $0 == 32 || $0 == 9 }.reversed()
            guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ (48...57).contains($0) }) else {
                throw Failure.malformed("a Content-Length that is not a number")
            }
            let number = digits.reduce(Int64(0)) { $0 * 10 + Int64($1 - 48) }
            if let result, result != number { throw Failure.malformed("conflicting Content-Length values") }
            result = number
        }
        guard let result else { throw Failure.malformed("an empty Content-Length") }
        return result
    }

    /// A comma-separated header's tokens, lowercased and trimmed.
    static func tokens(_ value: String) -> [String] {
        var tokens: [String] = []
        for part in value.utf8.split(separator: UInt8(ascii: ",")) {
            let trimmed = part.drop { $0 == 32 || $0 == 9 }.reversed().drop { $0 == 32 || $0 == 9 }.reversed()
            if !trimmed.isEmpty { tokens.append(String(decoding: trimmed.map { (65...90).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)) }
        }
        return tokens
    }

    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 48...57, 65...90, 97...122: true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default: false
        }
    }
}
