import CommandPipeline
import Foundation

/// `GenerateContentResponse`s (whole and streamed) normalised to `GenerationResponse`.
enum GeminiResponses {
    /// An integer from a server: a JSON number or an int64 sent as a string. Out of range,
    /// fractional or malformed values give nil; nothing here can trap.
    static func integer(_ value: JSONValue?) -> Int? {
        switch value {
        case .int(let i)?: return i
        case .double(let d)? where d.isFinite && d.rounded() == d && abs(d) < 9.0e15: return Int(d)
        case .string(let s)? where s.count <= 20: return Int(s.trimmingCharacters(in: .whitespaces))
        default: return nil
        }
    }

    /// `usageMetadata`: `promptTokenCount` includes `cachedContentTokenCount`; thinking
    /// tokens count as completion tokens (they are billed as output).
    static func usage(_ value: JSONValue?) -> Usage? {
        guard let u = value?.objectValue else { return nil }
        let prompt = integer(u["promptTokenCount"]) ?? 0
        let candidates = integer(u["candidatesTokenCount"]) ?? 0
        let thoughts = integer(u["thoughtsTokenCount"]) ?? 0
        let completion = max(0, candidates).addingSaturating(max(0, thoughts))
        return Usage(
            promptTokens: prompt, completionTokens: completion, totalTokens: integer(u["totalTokenCount"]) ?? prompt.addingSaturating(completion),
            cachedTokens: integer(u["cachedContentTokenCount"]) ?? 0)
    }

    static func parse(_ body: Data, provider: String, what: String = "the server's answer") throws(APIError) -> JSONValue {
        do throws(JSONParser.SyntaxError) {
            return try JSONParser.parse([UInt8](body))
        } catch {
            // No quote of the body here: this function has no key to redact with, and a quote cut
            // before redaction could leave a piece of a key behind. The status and size say enough.
            let preview = "\(body.count) bytes"
            throw APIError(.providerError, "\(what) is not JSON (\(error.message)): \(preview)", provider: provider)
        }
    }

    /// The engine's word for a Gemini finish reason.
    static func finishReason(_ reason: String) -> String {
        switch reason {
        case "STOP": "stop"
        case "MAX_TOKENS": "length"
        case "SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT": "content_filter"
        default: reason.lowercased()
        }
    }

    /// Folds whole or streamed responses into one answer: text of non-thought parts, the last
    /// finish reason, the last usage. A blocked prompt or an empty non-`STOP` answer throws.
    struct Assembler {
        var text = ""
        var model: String
        var finishReason: String?
        var usage: Usage?
        var sawCandidate = false
        /// The answer's `functionCall` parts, in order; `handedOut` of them announced already.
        var toolCalls: [ToolCall] = []
        private var handedOut = 0
        let provider: String
        /// The redaction for server text quoted in errors (redacted before it is cut).
        let serverText: ServerText

        init(requestedModel: String, provider: String, serverText: ServerText = ServerText(key: nil)) {
            model = requestedModel
            self.provider = provider
            self.serverText = serverText
        }

        /// Takes one response object; returns the text it adds.
        mutating func take(_ payload: JSONValue) throws(APIError) -> String {
            guard let chunk = payload.objectValue else {
                throw APIError(.providerError, "a response from Gemini is not a JSON object", provider: provider, retryable: true)
            }
            if let error = chunk["error"]?.objectValue {
                let status = GeminiErrorMapping.status(error)
                let retryable = [429, 500, 502, 503, 504].contains(status.code ?? 500)
                var failure = APIError(
                    status.code == 429 ? .rateLimited : .providerError,
                    "the stream reported an error\(status.status.map { " \($0)" } ?? ""): \(serverText.preview(status.message, limit: 600))",
                    provider: provider, retryable: retryable, code: status.reason ?? status.status)
                failure.retryAfter = status.retryDelay
                throw failure
            }
            if let version = chunk["modelVersion"]?.stringValue, !version.isEmpty { model = version }
            if let u = GeminiResponses.usage(chunk["usageMetadata"]) { usage = u }
            if let block = chunk["promptFeedback"]?.objectValue?["blockReason"]?.stringValue {
                let detail = chunk["promptFeedback"]?.objectValue?["blockReasonMessage"]?.stringValue.map { ": \($0)" } ?? ""
                throw APIError(
                    .providerError, "Gemini blocked the prompt (blockReason \(block))\(detail); change the prompt, or its safetySettings in provider_options",
                    provider: provider, retryable: false, code: "prompt_blocked_\(block)")
            }
            guard let candidate = chunk["candidates"]?.arrayValue?.first?.objectValue else { return "" }
            sawCandidate = true
            if let reason = candidate["finishReason"]?.stringValue { finishReason = reason }
            var added = ""
            for part in candidate["content"]?.objectValue?["parts"]?.arrayValue ?? [] {
                guard let part = part.objectValue, part["thought"]?.boolValue != true else { continue }
                if let call = GeminiTools.call(part, position: toolCalls.count) { toolCalls.append(call) }
                guard let piece = part["text"]?.stringValue else { continue }
                added += piece
            }
            text += added
            return added
        }

        /// Tool calls taken since the last time this was asked (Gemini sends each whole).
        mutating func completedToolCalls() -> [ToolCall] {
            guard toolCalls.count > handedOut else { return [] }
            let ready = Array(toolCalls[handedOut...])
            handedOut = toolCalls.count
            return ready
        }

        /// The answer, once every response was taken. `complete` is false for a stream that
        /// ended without a finish reason.
        func response(endpoint: String) throws(APIError) -> GenerationResponse {
            guard sawCandidate else {
                throw APIError(.providerError, "Gemini answered with no candidates and no block reason (\(endpoint))", provider: provider, retryable: false, code: "no_candidates")
            }
            let reason = finishReason ?? "STOP"
            if text.isEmpty && toolCalls.isEmpty && reason != "STOP" {
                let hint = reason == "MAX_TOKENS"
                    ? "the output limit was reached before any text (thinking may have used it all): raise config.max_tokens"
                    : "no text was produced"
                throw APIError(
                    .providerError, "Gemini stopped with finishReason \(reason): \(hint)", provider: provider, retryable: false,
                    code: "finish_\(reason)")
            }
            // Gemini says STOP after function calls; the engine's word for that is tool_calls.
            let finish = !toolCalls.isEmpty && reason == "STOP" ? "tool_calls" : GeminiResponses.finishReason(reason)
            return GenerationResponse(text: text, model: model, finishReason: finish, usage: usage ?? .unreported, toolCalls: toolCalls)
        }
    }
}
