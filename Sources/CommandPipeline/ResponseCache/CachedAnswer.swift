import Foundation

/// How a `GenerationResponse` is kept by a store: one JSON object, the same fields as a
/// result's `responses[i]` (`text`, `model`, `finish_reason`, `usage`, `parsed`, `tool_calls` with
/// `unparsed_arguments` when the model's arguments were not JSON) plus the
/// usage fields only the engine prices by. A field added to `GenerationResponse` that an answer
/// needs must be added here too (the format's `v` then grows, and older entries are misses).
package enum CachedAnswer {
    package static let version = 3

    /// The stored form, written straight into bytes (the members in the order above; `parsed`
    /// and the tool calls' arguments through `JSONSerializer`).
    package static func encode(_ answer: GenerationResponse) -> [UInt8] {
        let u = answer.usage
        var out: [UInt8] = []
        out.reserveCapacity(200 &+ answer.text.utf8.count)
        JSONSerializer.raw(#"{"v":"#, to: &out)
        JSONSerializer.writeInt(version, to: &out)
        JSONSerializer.raw(#","text":"#, to: &out)
        JSONSerializer.writeString(answer.text, to: &out)
        JSONSerializer.raw(#","model":"#, to: &out)
        JSONSerializer.writeString(answer.model, to: &out)
        JSONSerializer.raw(#","finish_reason":"#, to: &out)
        JSONSerializer.writeString(answer.finishReason, to: &out)
        JSONSerializer.raw(#","usage":{"prompt_tokens":"#, to: &out)
        JSONSerializer.writeInt(u.promptTokens, to: &out)
        JSONSerializer.raw(#","completion_tokens":"#, to: &out)
        JSONSerializer.writeInt(u.completionTokens, to: &out)
        JSONSerializer.raw(#","total_tokens":"#, to: &out)
        JSONSerializer.writeInt(u.totalTokens, to: &out)
        JSONSerializer.raw(#","cached_tokens":"#, to: &out)
        JSONSerializer.writeInt(u.cachedTokens, to: &out)
        JSONSerializer.raw(#","cache_creation_tokens":"#, to: &out)
        JSONSerializer.writeInt(u.cacheCreationTokens, to: &out)
        JSONSerializer.raw(#","cache_creation_long_tokens":"#, to: &out)
        JSONSerializer.writeInt(u.cacheCreationLongTokens, to: &out)
        out.append(UInt8(ascii: "}"))
        if let parsed = answer.parsed {
            JSONSerializer.raw(#","parsed":"#, to: &out)
            JSONSerializer.write(parsed, to: &out)
        }
        if !answer.toolCalls.isEmpty {
            JSONSerializer.raw(#","tool_calls":"#, to: &out)
            JSONSerializer.write(
                .array(
                    answer.toolCalls.map { call in
                        var fields: JSONObject = ["id": .string(call.id), "name": .string(call.name), "arguments": call.arguments]
                        if let text = call.unparsedArguments { fields["unparsed_arguments"] = .string(text) }
                        if let signature = call.signature { fields["signature"] = .string(signature) }
                        return .object(fields)
                    }), to: &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The answer, or nil for bytes that are not one of this version (a damaged or older entry is
    /// a miss). An answer as `encode` writes it without `parsed` or tool calls is read directly
    /// (`Direct`); anything else, through `JSONParser`.
    package static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> GenerationResponse? {
        var direct = Direct(bytes)
        if let answer = direct.answer() { return answer }
        return parse(bytes)
    }

    /// Reads the exact layout `encode` writes for an answer without `parsed` or tool calls;
    /// nil for anything else (the caller then parses the JSON), never a wrong answer.
    struct Direct {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func answer() -> GenerationResponse? {
            guard literal(#"{"v":"#), let v = int(), v == CachedAnswer.version,
                literal(#","text":"#), let text = string(),
                literal(#","model":"#), let model = string(),
                literal(#","finish_reason":"#), let finish = string(),
                literal(#","usage":{"prompt_tokens":"#), let prompt = int(),
                literal(#","completion_tokens":"#), let completion = int(),
                literal(#","total_tokens":"#), let total = int(),
                literal(#","cached_tokens":"#), let cached = int(),
                literal(#","cache_creation_tokens":"#), let creation = int(),
                literal(#","cache_creation_long_tokens":"#), let creationLong = int(),
                literal("}}"), i == bytes.count
            else { return nil }
            return GenerationResponse(
                text: text, model: model, finishReason: finish,
                usage: Usage(
                    promptTokens: prompt, completionTokens: completion, totalTokens: total, cachedTokens: cached, cacheCreationTokens: creation,
                    cacheCreationLongTokens: creationLong))
        }

        mutating func literal(_ text: StaticString) -> Bool {
            let count = text.utf8CodeUnitCount
            guard bytes.count - i >= count, memcmp(bytes.baseAddress! + i, text.utf8Start, count) == 0 else { return false }
            i += count
            return true
        }

        /// A JSON integer of at most 18 digits (no overflow); nil for anything else.
        mutating func int() -> Int? {
            var negative = false
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") {
                negative = true
                i += 1
            }
            let start = i
            var value = 0
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9"), i - start < 18 {
                value = value * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                i += 1
            }
            guard i > start, i == start + 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
            if i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { return nil }
            return negative ? -value : value
        }

        /// A JSON string with the escapes `JSONSerializer` writes but `\u`; valid UTF-8 only.
        mutating func string() -> String? {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            let start = i
            while i < bytes.count {
                let byte = bytes[i]
                if byte == UInt8(ascii: "\"") {
                    let text = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
                    i += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { return escaped(from: start) }
                if byte < 0x20 { return nil }
                i += 1
            }
            return nil
        }

        /// The rest of a string that has escapes, from its first byte at `start`.
        private mutating func escaped(from start: Int) -> String? {
            var out = Array(UnsafeBufferPointer(rebasing: bytes[start..<i]))
            while i < bytes.count {
                let byte = bytes[i]
                i += 1
                switch byte {
                case UInt8(ascii: "\""): return String(validating: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard i < bytes.count else { return nil }
                    let escape = bytes[i]
                    i += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    default: return nil   // \u…: the parser's business
                    }
                case 0..<0x20: return nil
                default: out.append(byte)
                }
            }
            return nil
        }
    }

    /// The answer through `JSONParser` (any layout, any member order).
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> GenerationResponse? {
        guard let value = try? JSONParser.parse(bytes, options: .strict), let object = value.objectValue, object["v"]?.intValue == version,
            let text = object["text"]?.stringValue, let model = object["model"]?.stringValue, let finish = object["finish_reason"]?.stringValue,
            let usage = object["usage"]?.objectValue
        else { return nil }
        func count(_ name: String) -> Int { usage[name]?.intValue ?? 0 }
        var toolCalls: [ToolCall] = []
        if let value = object["tool_calls"] {
            guard let items = value.arrayValue else { return nil }
            for item in items {
                guard let call = item.objectValue, let id = call["id"]?.stringValue, let name = call["name"]?.stringValue, let arguments = call["arguments"]
                else { return nil }
                var unparsed: String?
                if let text = call["unparsed_arguments"] {
                    guard let string = text.stringValue else { return nil }
                    unparsed = string
                }
                var signature: String?
                if let value = call["signature"] {
                    guard let string = value.stringValue else { return nil }
                    signature = string
                }
                toolCalls.append(ToolCall(id: id, name: name, arguments: arguments, unparsedArguments: unparsed, signature: signature))
            }
        }
        return GenerationResponse(
            text: text, model: model, finishReason: finish,
            usage: Usage(
                promptTokens: count("prompt_tokens"), completionTokens: count("completion_tokens"), totalTokens: count("total_tokens"),
                cachedTokens: count("cached_tokens"), cacheCreationTokens: count("cache_creation_tokens"),
                cacheCreationLongTokens: count("cache_creation_long_tokens")),
            parsed: object["parsed"], toolCalls: toolCalls)
    }

    package static func decode(_ bytes: [UInt8]) -> GenerationResponse? { bytes.withUnsafeBufferPointer { decode($0) } }
}
