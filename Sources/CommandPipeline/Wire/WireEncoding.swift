import Foundation

/// Values as they appear on the wire (snake_case, as in WIRE-FORMAT.md).
public protocol WireEncodable {
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
            ["type": "history", "turns": .array(history.turns.map { ["question": .string($0.question), "answer": .string($0.answer)] })]
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
        switch target {
        case .call(let c): ["part_index": .int(partIndex), "call_index": .int(c), "required": .bool(required)]
        case .shared: ["part_index": .int(partIndex), "shared": true, "required": .bool(required)]
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

extension Usage: WireEncodable {
    public var wireValue: JSONValue {
        ["prompt_tokens": .int(promptTokens), "completion_tokens": .int(completionTokens), "total_tokens": .int(totalTokens), "cached_tokens": .int(cachedTokens)]
    }
}

extension CallResponse: WireEncodable {
    public var wireValue: JSONValue {
        ["call_index": .int(callIndex), "text": .string(text), "model": .string(model), "finish_reason": .string(finishReason), "usage": usage.wireValue]
    }
}

extension ErrorSummary: WireEncodable {
    public var wireValue: JSONValue {
        ["kind": .string(kind.rawValue), "message": .string(message), "provider": provider.map(JSONValue.string) ?? .null, "retryable": .bool(retryable)]
    }
}

extension TokenValidation: WireEncodable {
    public var wireValue: JSONValue {
        [
            "estimated": ["min": .int(estimated.minTokens), "expected": .int(estimated.expectedTokens), "max": .int(estimated.maxTokens)],
            "actual": .int(actual), "in_range": .bool(inRange), "accuracy_ratio": .double(accuracyRatio),
        ]
    }
}

extension Telemetry: WireEncodable {
    public var wireValue: JSONValue {
        func ms(_ d: Duration) -> JSONValue { .double((d.milliseconds * 1000).rounded() / 1000) }
        return [
            "provider": .string(provider), "used_fallback": .bool(usedFallback), "primary_error": primaryError?.wireValue ?? .null,
            "retries": .int(retries),
            "durations_ms": ["upload": ms(durations.upload), "cache": ms(durations.cache), "generate": ms(durations.generate), "total": ms(durations.total)],
            "uploads": ["performed": .int(uploads.performed), "reused": .int(uploads.reused), "skipped": .int(uploads.skipped)],
            "cache": cache.map { ["id": $0.id.map(JSONValue.string) ?? .null, "key": .string($0.key), "created": .bool($0.created), "reused": .bool($0.reused)] } ?? .null,
            "token_validation": tokenValidation?.wireValue ?? .null,
        ]
    }
}

extension APIError: WireEncodable {
    /// The `error` object of a failed result.
    public var wireValue: JSONValue {
        var object: JSONObject = [
            "kind": .string(kind.rawValue), "message": .string(message), "path": path.map(JSONValue.string) ?? .null,
            "provider": provider.map(JSONValue.string) ?? .null, "retryable": .bool(retryable),
        ]
        var details = JSONObject()
        if let code { details["code"] = .string(code) }
        if let retryAfter { details["retry_after_ms"] = .double(retryAfter.milliseconds) }
        if !failedCalls.isEmpty { details["failed_calls"] = .array(failedCalls.map(JSONValue.int)) }
        if let primaryError { details["primary_error"] = primaryError.wireValue }
        if !details.isEmpty { object["details"] = .object(details) }
        return .object(object)
    }
}

/// One line of the CLI's output: a succeeded or failed result for the command at `index`.
public enum ResultRecord {
    public static func succeeded(_ command: FinalizedCommand, index: Int) -> JSONValue {
        [
            "id": .string(command.id), "index": .int(index), "status": "succeeded",
            "responses": .array(command.responses.map(\.wireValue)), "usage": command.usage.wireValue,
            "telemetry": command.telemetry.wireValue, "metadata": .object(command.metadata),
        ]
    }

    public static func failed(_ error: APIError, id: String, index: Int, metadata: JSONObject, provider: String) -> JSONValue {
        var object: JSONObject = [
            "id": .string(id), "index": .int(index), "status": "failed", "error": error.wireValue,
            "telemetry": (error.telemetry ?? Telemetry(provider: provider)).wireValue,
        ]
        if !error.partialResponses.isEmpty {
            object["responses"] = .array(error.partialResponses.map(\.wireValue))
            object["usage"] = error.partialResponses.reduce(Usage.zero) { $0 + $1.usage }.wireValue
        }
        object["metadata"] = .object(metadata)
        return .object(object)
    }

    public static func make(_ result: Result<FinalizedCommand, APIError>, id: String, index: Int, metadata: JSONObject, provider: String) -> JSONValue {
        switch result {
        case .success(let finalized): succeeded(finalized, index: index)
        case .failure(let error): failed(error, id: id, index: index, metadata: metadata, provider: provider)
        }
    }
}
