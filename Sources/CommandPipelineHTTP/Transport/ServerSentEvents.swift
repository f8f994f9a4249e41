/// An incremental Server-Sent Events parser (the WHATWG event-stream format): bytes
/// arrive in chunks split anywhere; lines end in LF, CR or CRLF; `:` lines are comments;
/// several `data:` lines join with newlines; a blank line dispatches the event.
public struct ServerSentEventParser: Sendable {
    public struct Event: Sendable, Hashable {
        /// The `event:` name; `message` when none was given.
        public var name: String
        public var data: String
    }

    private var line: [UInt8] = []
    private var data: [String] = []
    private var name = ""
    private var lastWasCR = false

    public init() {}

    /// Feeds bytes; returns every event they complete.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) -> [Event] where Bytes.Element == UInt8 {
        var events: [Event] = []
        for byte in bytes {
            if byte == 0x0a && lastWasCR {  // the LF of a CRLF
                lastWasCR = false
                continue
            }
            lastWasCR = byte == 0x0d
            if byte == 0x0a || byte == 0x0d {
                if let event = endLine() { events.append(event) }
            } else {
                line.append(byte)
            }
        }
        return events
    }

    /// Ends the stream: an event without its final blank line is still dispatched.
    public mutating func finish() -> [Event] {
        var events: [Event] = []
        if !line.isEmpty, let event = endLine() { events.append(event) }
        if let event = dispatch() { events.append(event) }
        return events
    }

    private mutating func endLine() -> Event? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty { return dispatch() }
        if line.first == UInt8(ascii: ":") { return nil }  // comment / keep-alive
        let text = String(decoding: line, as: UTF8.self)
        let field: Substring
        var value: Substring
        if let colon = text.firstIndex(of: ":") {
            field = text[..<colon]
            value = text[text.index(after: colon)...]
            if value.first == " " { value = value.dropFirst() }
        } else {
            field = text[...]
            value = ""
        }
        switch field {
        case "data": data.append(String(value))
        case "event": name = String(value)
        default: break  // id, retry, unknown fields
        }
        return nil
    }

    private mutating func dispatch() -> Event? {
        defer {
            data.removeAll()
            name = ""
        }
        guard !data.isEmpty else { return nil }
        return Event(name: name.isEmpty ? "message" : name, data: data.joined(separator: "\n"))
    }
}
