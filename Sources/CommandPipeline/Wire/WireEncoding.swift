import Foundation

/// Values as they appear on the wire (snake_case, as in WIRE-FORMAT.md).
package protocol WireEncodable {
    var wireValue: JSONValue { get }
}

extension APIPart: WireEncodable {
    public var wireValue: JSONValue {
        switch self {
        case .text(let text): ["type": "text", "text": .string(text)]
        case .fileRef(let ref): ["type": "file_ref", "uri": .string(ref.uri), "mime_type": .string(ref.mimeType)]
        case .filePlaceholder(let p):
            .object(JSONObject([
                (key: "type", value: "file_placeholder"), (key: "path", value: .string(p.path)),
                (key: "mime_type", value: p.mimeType.map(JSONValue.string) ?? .null), (key: "ephemeral", value: .bool(p.ephemeral)),
            ]))
        case .inline(let inline): ["type": "inline", "mime_type": .string(inline.mimeType), "data": .string(inline.data.base64EncodedString())]
        case .history(let history):
            ["type": "history", "turns": .array(history.map { turn in
                var object: JSONObject = ["question": .string(turn.question), "answer": .string(turn.answer)]
                if !turn.toolCalls.isEmpty { object["tool_calls"] = .array(turn.toolCalls.map(\.wireValue)) }
                return .object(object)
            })]
        case .toolResult(let result): result.wireValue
        }
    }
}

extension GenerationConfig: WireEncodable {
    public var wireValue: JSONValue {
        var object = JSONObject()
        object["system_instruction"] = systemInstruction.map(JSONValue.string)
        object["temperature"] = temperature.map(JSONValue.double)
        object["top_p"] = topP.map(JSONValue.double)
        object["max_tokens"] = maxTokens.map(JSONValue.int)
        object["stop"] = stop.map { .array($0.map(JSONValue.string)) }
        object["seed"] = seed.map(JSONValue.int)
        object["response_format"] = responseFormat
        if let maxRepairs { object["max_repairs"] = .int(maxRepairs) }
        if let tools { object["tools"] = .array(tools.map(\.wireValue)) }
        if let toolChoice { object["tool_choice"] = toolChoice.wireValue }
        if !providerOptions.isEmpty { object["provider_options"] = .object(providerOptions) }
        return .object(object)
    }
}

extension APICall: WireEncodable {
    public var wireValue: JSONValue {
        ["model": .string(model), "parts": .array(parts.map(\.wireValue)), "config": config.wireValue]
    }
}

extension UploadTask: WireEncodable {
    public var wireValue: JSONValue {
        switch callIndex {
        case let c?: ["part_index": .int(partIndex), "call_index": .int(c), "required": .bool(required)]
        case nil: ["part_index": .int(partIndex), "shared": true, "required": .bool(required)]
        }
    }
}

extension CachePlan: WireEncodable {
    public var wireValue: JSONValue { ["ttl_seconds": .int(ttlSeconds), "key": key.map(JSONValue.string) ?? .null] }
}

extension RateConstraint: WireEncodable {
    public var wireValue: JSONValue {
        ["requests_per_minute": requestsPerMinute.map(JSONValue.int) ?? .null, "tokens_per_minute": tokensPerMinute.map(JSONValue.int) ?? .null]
    }
}

extension TokenEstimate: WireEncodable {
    public var wireValue: JSONValue {
        ["min_tokens": .int(minTokens), "expected_tokens": .int(expectedTokens), "max_tokens": .int(maxTokens),
         "confidence": confidence.map(JSONValue.double) ?? .null]
    }
}

extension ExecutionPlan: WireEncodable {
    public var wireValue: JSONValue {
        [
            "calls": .array(calls.map(\.wireValue)), "shared_parts": .array(sharedParts.map(\.wireValue)),
            "fallback_call": fallbackCall?.wireValue ?? .null, "upload_tasks": .array(uploadTasks.map(\.wireValue)),
            "cache": cache?.wireValue ?? .null, "rate_constraint": rateConstraint?.wireValue ?? .null,
        ]
    }
}

extension PlannedCommand: WireEncodable {
    public var wireValue: JSONValue {
        [
            "id": .string(id), "plan": plan.wireValue, "token_estimate": tokenEstimate?.wireValue ?? .null,
            "per_call_estimates": .array(perCallEstimates.map(\.wireValue)), "metadata": .object(metadata),
        ]
    }
}
