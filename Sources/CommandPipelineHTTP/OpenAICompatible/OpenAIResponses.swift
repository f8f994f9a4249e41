import CommandPipeline
import Foundation

/// Chat Completions responses (whole and streamed) normalised to `GenerationResponse`.
/// Server text quoted in errors goes through `ServerText` (redacted, then cut).
enum OpenAIResponses {
    /// The largest token count taken from a server (2^53, exact in a double): a larger or
    /// negative figure is pinned to `0...maxReportedTokens` where it enters, so sums of any
    /// realistic number of calls cannot overflow.
    static let maxReportedTokens = 1 << 53

    /// A token count from a server: integers and integral doubles, pinned to `0...maxReportedTokens`;
    /// anything else (strings, null, NaN) is nil.
    static func tokens(_ value: JSONValue?) -> Int? {
        switch value {
        case .int(let i)?: return min(max(i, 0), maxReportedTokens)
        case .double(let d)? where d.isFinite: return d <= 0 ? 0 : d >= Double(maxReportedTokens) ? maxReportedTokens : Int(d)
        default: return nil
        }
    }

    /// The answer's `usage`; `Usage.unreported` when the server sent none (or one without a
    /// count): unknown, not zero.
    static func usage(_ value: JSONValue?) -> Usage {
        guard case .object(let u)? = value else { return .unreported }
        let promptCount = tokens(u["prompt_tokens"]) ?? tokens(u["input_tokens"])
        let completionCount = tokens(u["completion_tokens"]) ?? tokens(u["output_tokens"])
        let totalCount = tokens(u["total_tokens"])
        if promptCount == nil && completionCount == nil && totalCount == nil { return .unreported }
        let prompt = promptCount ?? 0, completion = completionCount ?? 0
        let cached = tokens(u["prompt_tokens_details"]?.objectValue?["cached_tokens"]) ?? 0
        let total = totalCount ?? min(prompt + completion, maxReportedTokens)
        return Usage(promptTokens: prompt, completionTokens: completion, totalTokens: total, cachedTokens: cached)
    }

    static func completion(_ body: Data, requestedModel: String, provider: String, text: ServerText) throws(APIError) -> GenerationResponse {
        guard case .object(let object) = try parse(body, provider: provider, text: text) else {
            throw APIError(.providerError, "the server's answer is not a JSON object: \(text.preview(body))", provider: provider)
        }
        guard case .object(let choice)? = object["choices"]?.arrayValue?.first else {
            // An answer without choices may still report what it was billed.
            throw APIError(.providerError, "the server's answer has no choices", provider: provider).billed(usage(object["usage"]))
        }
        let message = choice["message"]?.objectValue
        let content = message?["content"]?.stringValue ?? message?["refusal"]?.stringValue ?? ""
        let calls = ChatTools.calls(message?["tool_calls"])
        return GenerationResponse(
            text: content, model: object["model"]?.stringValue ?? requestedModel,
            finishReason: ChatTools.finishReason(choice["finish_reason"]?.stringValue ?? "stop", hasCalls: !calls.isEmpty),
            usage: usage(object["usage"]), toolCalls: calls)
    }

    static func parse(_ body: Data, provider: String, text: ServerText) throws(APIError) -> JSONValue {
        do throws(JSONParser.SyntaxError) {
            return try JSONParser.parse([UInt8](body))
        } catch {
            throw APIError(.providerError, "the server's answer is not JSON (\(error.message)): \(text.preview(body))", provider: provider)
        }
    }

    /// Folds streamed chunks into the response the non-streaming call would have given.
    struct StreamAssembler {
        var text = ""
        var model: String
        var finishReason = "stop"
        /// Unreported until a chunk carries `usage` (servers that ignore `stream_options.include_usage` send none).
        var usage = Usage.unreported
        /// Tool calls as they stream in (`ChatTools.StreamCalls`).
        var calls = ChatTools.StreamCalls()
        /// A finish reason has come: every call started is whole.
        var finished = false

        init(requestedModel: String) { model = requestedModel }

        /// Tool calls that became whole with the last payload, not handed out before.
        mutating func completedToolCalls() -> [ToolCall] { calls.completed(finished: finished) }

        /// The text delta of one `data:` payload, if any. An `{"error": …}` payload throws.
        mutating func take(_ payload: JSONValue, provider: String, serverText: ServerText) throws(APIError) -> String? {
            guard case .object(let chunk) = payload else { return nil }
            if let error = chunk["error"] {
                let message = error.objectValue?["message"]?.stringValue ?? error.stringValue ?? JSONSerializer.serialize(error)
                throw APIError(.providerError, "the stream reported an error: \(serverText.preview(message))", provider: provider, retryable: true)
            }
            if let m = chunk["model"]?.stringValue { model = m }
            if let u = chunk["usage"], u != .null { usage = OpenAIResponses.usage(u) }
            guard case .object(let choice)? = chunk["choices"]?.arrayValue?.first else { return nil }
            if let reason = choice["finish_reason"]?.stringValue {
                finishReason = reason
                finished = true
            }
            if let toolCalls = choice["delta"]?.objectValue?["tool_calls"] {
                do throws(APIError) { try calls.take(toolCalls) } catch {
                    var error = error
                    error.provider = provider
                    throw error
                }
            }
            guard let delta = choice["delta"]?.objectValue?["content"]?.stringValue, !delta.isEmpty else { return nil }
            text += delta
            return delta
        }

        var response: GenerationResponse {
            let toolCalls = calls.all
            return GenerationResponse(
                text: text, model: model, finishReason: ChatTools.finishReason(finishReason, hasCalls: !toolCalls.isEmpty), usage: usage, toolCalls: toolCalls)
        }
    }
}
