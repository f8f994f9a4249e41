/// How a `GenerationResponse` is kept by a store: one JSON object, the same fields as a
/// result's `responses[i]` (`text`, `model`, `finish_reason`, `usage`, `parsed`, `tool_calls` with
/// `unparsed_arguments` when the model's arguments were not JSON) plus the
/// usage fields only the engine prices by. A field added to `GenerationResponse` that an answer
/// needs must be added here too (the format's `v` then grows, and older entries are misses).
package enum CachedAnswer {
    package static let version = 3

    package static func encode(_ answer: GenerationResponse) -> [UInt8] {
        let u = answer.usage
        var object: JSONObject = [
            "v": .int(version), "text": .string(answer.text), "model": .string(answer.model), "finish_reason": .string(answer.finishReason),
            "usage": [
                "prompt_tokens": .int(u.promptTokens), "completion_tokens": .int(u.completionTokens), "total_tokens": .int(u.totalTokens),
                "cached_tokens": .int(u.cachedTokens), "cache_creation_tokens": .int(u.cacheCreationTokens),
                "cache_creation_long_tokens": .int(u.cacheCreationLongTokens),
            ],
        ]
        if let parsed = answer.parsed { object["parsed"] = parsed }
        if !answer.toolCalls.isEmpty {
            object["tool_calls"] = .array(
                answer.toolCalls.map { call in
                    var fields: JSONObject = ["id": .string(call.id), "name": .string(call.name), "arguments": call.arguments]
                    if let text = call.unparsedArguments { fields["unparsed_arguments"] = .string(text) }
                    if let signature = call.signature { fields["signature"] = .string(signature) }
                    return .object(fields)
                })
        }
        var out: [UInt8] = []
        JSONSerializer.write(.object(object), to: &out)
        return out
    }

    /// The answer, or nil for bytes that are not one of this version (a damaged or older entry is a miss).
    package static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> GenerationResponse? {
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
