import CommandPipeline
import Foundation

/// Chat Completions responses (whole and streamed) normalised to `GenerationResponse`.
enum OpenAIResponses {
    static func usage(_ value: JSONValue?) -> Usage {
        guard case .object(let u)? = value else { return .zero }
        let prompt = u["prompt_tokens"]?.intValue ?? u["input_tokens"]?.intValue ?? 0
        let completion = u["completion_tokens"]?.intValue ?? u["output_tokens"]?.intValue ?? 0
        let cached = u["prompt_tokens_details"]?.objectValue?["cached_tokens"]?.intValue ?? 0
        return Usage(promptTokens: prompt, completionTokens: completion, totalTokens: u["total_tokens"]?.intValue ?? prompt + completion, cachedTokens: cached)
    }

    static func completion(_ body: Data, requestedModel: String, provider: String) throws(APIError) -> GenerationResponse {
        guard case .object(let object) = try parse(body, provider: provider) else {
            throw APIError(.providerError, "the server's answer is not a JSON object", provider: provider)
        }
        guard case .object(let choice)? = object["choices"]?.arrayValue?.first else {
            throw APIError(.providerError, "the server's answer has no choices", provider: provider)
        }
        let message = choice["message"]?.objectValue
        let text = message?["content"]?.stringValue ?? message?["refusal"]?.stringValue ?? ""
        return GenerationResponse(
            text: text, model: object["model"]?.stringValue ?? requestedModel,
            finishReason: choice["finish_reason"]?.stringValue ?? "stop", usage: usage(object["usage"]))
    }

    static func parse(_ body: Data, provider: String) throws(APIError) -> JSONValue {
        do throws(JSONParser.SyntaxError) {
            return try JSONParser.parse([UInt8](body))
        } catch {
            let preview = String(decoding: body.prefix(120), as: UTF8.self)
            throw APIError(.providerError, "the server's answer is not JSON (\(error.message)): \(preview)", provider: provider)
        }
    }

    /// Folds streamed chunks into the response the non-streaming call would have given.
    struct StreamAssembler {
        var text = ""
        var model: String
        var finishReason = "stop"
        var usage = Usage.zero

        init(requestedModel: String) { model = requestedModel }

        /// The text delta of one `data:` payload, if any. An `{"error": …}` payload throws.
        mutating func take(_ payload: JSONValue, provider: String) throws(APIError) -> String? {
            guard case .object(let chunk) = payload else { return nil }
            if let error = chunk["error"] {
                let message = error.objectValue?["message"]?.stringValue ?? JSONSerializer.serialize(error)
                throw APIError(.providerError, "the stream reported an error: \(message)", provider: provider, retryable: true)
            }
            if let m = chunk["model"]?.stringValue { model = m }
            if let u = chunk["usage"], u != .null { usage = OpenAIResponses.usage(u) }
            guard case .object(let choice)? = chunk["choices"]?.arrayValue?.first else { return nil }
            if let reason = choice["finish_reason"]?.stringValue { finishReason = reason }
            guard let delta = choice["delta"]?.objectValue?["content"]?.stringValue, !delta.isEmpty else { return nil }
            text += delta
            return delta
        }

        var response: GenerationResponse { GenerationResponse(text: text, model: model, finishReason: finishReason, usage: usage) }
    }
}
