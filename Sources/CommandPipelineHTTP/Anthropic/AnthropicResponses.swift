import CommandPipeline
import Foundation

/// Messages API answers (whole and streamed) normalised to `GenerationResponse`.
enum AnthropicResponses {
    /// `stop_reason` → the engine's finish reasons. Reasons that say the answer is cut short or
    /// withheld stay visible: `max_tokens` is `length`, `refusal` stays `refusal`; unknown
    /// reasons pass through unchanged.
    static func finishReason(_ stopReason: String?) -> String {
        switch stopReason {
        case nil, "end_turn", "stop_sequence": "stop"
        case "max_tokens", "model_context_window_exceeded": "length"
        case "tool_use": "tool_calls"
        case let other?: other
        }
    }

    /// Anthropic's `input_tokens` excludes the tokens read from and written to the cache; the
    /// engine's `prompt_tokens` includes both (as OpenAI's and Gemini's do).
    /// `Usage.unreported` when the answer has no `usage`: unknown, not zero.
    static func usage(_ value: JSONValue?) -> Usage {
        guard case .object(let u)? = value, u["input_tokens"] != nil || u["output_tokens"] != nil else { return .unreported }
        return usage(
            input: u["input_tokens"]?.intValue ?? 0, output: u["output_tokens"]?.intValue ?? 0,
            cacheRead: u["cache_read_input_tokens"]?.intValue ?? 0, cacheCreation: u["cache_creation_input_tokens"]?.intValue ?? 0,
            cacheCreationLong: longWrites(u))
    }

    /// `usage.cache_creation.ephemeral_1h_input_tokens`: written tokens billed at the one-hour write price.
    static func longWrites(_ usage: JSONObject) -> Int {
        usage["cache_creation"]?.objectValue?["ephemeral_1h_input_tokens"]?.intValue ?? 0
    }

    static func usage(input: Int, output: Int, cacheRead: Int, cacheCreation: Int, cacheCreationLong: Int = 0) -> Usage {
        let range = Limits.reportedTokens
        let (input, output, read, written) = (range.clamp(input), range.clamp(output), range.clamp(cacheRead), range.clamp(cacheCreation))
        let prompt = input.addingSaturating(read).addingSaturating(written)
        return Usage(
            promptTokens: prompt, completionTokens: output, totalTokens: prompt.addingSaturating(output), cachedTokens: read, cacheCreationTokens: written,
            cacheCreationLongTokens: cacheCreationLong)
    }

    /// The text of the answer: its `text` blocks in order (thinking and tool blocks are not text).
    static func text(_ content: JSONValue?) -> String {
        (content?.arrayValue ?? []).compactMap { block -> String? in
            guard block.objectValue?["type"]?.stringValue == "text" else { return nil }
            return block.objectValue?["text"]?.stringValue
        }.joined()
    }

    static func message(_ body: Data, requestedModel: String, provider: String) throws(APIError) -> GenerationResponse {
        guard case .object(let object) = try parse(body, provider: provider) else {
            throw APIError(.providerError, "the server's answer is not a JSON object", provider: provider)
        }
        guard object["type"]?.stringValue == "message" || object["content"]?.arrayValue != nil else {
            throw APIError(.providerError, "the server's answer is not a message (no content blocks)", provider: provider)
        }
        return GenerationResponse(
            text: text(object["content"]), model: object["model"]?.stringValue ?? requestedModel,
            finishReason: finishReason(object["stop_reason"]?.stringValue), usage: usage(object["usage"]),
            toolCalls: AnthropicTools.calls(object["content"]))
    }

    static func parse(_ body: Data, provider: String) throws(APIError) -> JSONValue {
        do throws(JSONParser.SyntaxError) {
            return try JSONParser.parse([UInt8](body))
        } catch {
            // No quote of the body here: this function has no key to redact with, and a quote cut
            // before redaction could leave a piece of a key behind. The status and size say enough.
            let preview = "\(body.count) bytes"
            throw APIError(.providerError, "the server's answer is not JSON (\(error.message)): \(preview)", provider: provider)
        }
    }

    /// Folds the named events of a stream into the response the non-streaming call would have given.
    struct StreamAssembler {
        var text = ""
        var model: String
        var stopReason: String?
        var input = 0, output = 0, cacheRead = 0, cacheCreation = 0, cacheCreationLong = 0
        /// `message_stop` arrived: the stream is complete.
        private(set) var finished = false
        private(set) var started = false
        /// `tool_use` blocks as they stream in.
        var calls = AnthropicTools.StreamCalls()

        init(requestedModel: String) { model = requestedModel }

        /// Tool calls whose block ended since the last time this was asked.
        mutating func completedToolCalls() -> [ToolCall] { calls.completed() }

        /// Takes one event; returns its text delta, if any. An `error` event throws (retryable
        /// unless the error says the request itself is wrong); unknown events are ignored.
        mutating func take(_ event: ServerSentEventParser.Event, provider: String, text serverText: ServerText) throws(APIError) -> String? {
            let payload: JSONValue
            do throws(JSONParser.SyntaxError) {
                payload = try JSONParser.parse(Array(event.data.utf8))
            } catch {
                throw APIError(
                    .providerError, "the stream sent a '\(event.name)' event that is not JSON (\(error.message)): the answer is incomplete",
                    provider: provider, retryable: true, code: "stream_malformed")
            }
            let object = payload.objectValue ?? [:]
            let type = event.name == "message" ? (object["type"]?.stringValue ?? "message") : event.name
            switch type {
            case "message_start":
                started = true
                let message = object["message"]?.objectValue
                if let m = message?["model"]?.stringValue { model = m }
                takeUsage(message?["usage"])
            case "content_block_start":
                if case .object(let block)? = object["content_block"], block["type"]?.stringValue == "tool_use" {
                    calls.start(index: object["index"]?.intValue ?? -1, block: block)
                } else if case .object(let block)? = object["content_block"], block["type"]?.stringValue == "text",
                    let initial = block["text"]?.stringValue, !initial.isEmpty
                {
                    text += initial
                    return initial
                }
            case "content_block_delta":
                if case .object(let delta)? = object["delta"], delta["type"]?.stringValue == "input_json_delta" {
                    do throws(APIError) {
                        try calls.add(index: object["index"]?.intValue ?? -1, json: delta["partial_json"]?.stringValue ?? "")
                    } catch {
                        var error = error
                        error.provider = provider
                        throw error
                    }
                } else if case .object(let delta)? = object["delta"], delta["type"]?.stringValue == "text_delta",
                    let piece = delta["text"]?.stringValue, !piece.isEmpty
                {
                    text += piece
                    return piece
                }
            case "message_delta":
                if let reason = object["delta"]?.objectValue?["stop_reason"]?.stringValue { stopReason = reason }
                takeUsage(object["usage"])
            case "content_block_stop":
                calls.stop(index: object["index"]?.intValue ?? -1)
            case "message_stop":
                finished = true
            case "error":
                let error = object["error"]?.objectValue
                let errorType = error?["type"]?.stringValue ?? "error"
                let message = serverText.preview(error?["message"]?.stringValue ?? event.data, limit: 300)
                let clientFault = ["invalid_request_error", "authentication_error", "permission_error", "not_found_error", "request_too_large"].contains(errorType)
                throw APIError(
                    errorType == "rate_limit_error" ? .rateLimited : .providerError,
                    "the stream reported \(errorType) after the answer began: \(message)",
                    provider: provider, retryable: !clientFault, code: errorType)
            default:
                break  // ping, content_block_stop, and event types added later
            }
            return nil
        }

        /// `message_start` carries the input side; `message_delta` carries cumulative counts
        /// (output, and sometimes input and cache fields too): the latest value of each wins.
        private mutating func takeUsage(_ value: JSONValue?) {
            guard case .object(let u)? = value else { return }
            if u["input_tokens"]?.intValue != nil || u["output_tokens"]?.intValue != nil { reported = true }
            if let v = u["input_tokens"]?.intValue { input = v }
            if let v = u["output_tokens"]?.intValue { output = v }
            if let v = u["cache_read_input_tokens"]?.intValue { cacheRead = v }
            if let v = u["cache_creation_input_tokens"]?.intValue { cacheCreation = v }
            if let v = u["cache_creation"]?.objectValue?["ephemeral_1h_input_tokens"]?.intValue { cacheCreationLong = v }
        }

        /// Whether a `usage` with a count came (a stream that ends without one has unknown usage).
        private var reported = false

        /// Whether the stream has reported any usage yet (`message_start` carries the input side).
        var hasUsage: Bool { input != 0 || output != 0 || cacheRead != 0 || cacheCreation != 0 }

        /// What the answer reported so far: what a stream that broke was billed.
        var usageSoFar: Usage {
            AnthropicResponses.usage(input: input, output: output, cacheRead: cacheRead, cacheCreation: cacheCreation, cacheCreationLong: cacheCreationLong)
        }

        var response: GenerationResponse {
            GenerationResponse(
                text: text, model: model, finishReason: AnthropicResponses.finishReason(stopReason),
                usage: reported ? usageSoFar : .unreported, toolCalls: calls.finished)
        }
    }
}
