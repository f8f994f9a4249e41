import CommandPipeline
import Foundation

/// Turns a `GenerationRequest` into a Messages API body. Parts the API cannot take fail
/// here, before anything is sent, with `capability_missing` naming the part; a
/// `provider_options` key the adapter sets itself fails with `invalid_command` naming the key.
///
/// With a prefix cache (`CacheReference.prefixPartCount`) the system instruction goes as text
/// blocks and the last block of the cached parts carries the `cache_control` breakpoint, so
/// the API caches everything up to it (tools → system → messages).
struct AnthropicRequestBuilder {
    let configuration: AnthropicConfiguration
    let providerName: String

    /// Top-level keys the adapter sets; `provider_options` may not override them.
    static let reservedKeys: Set<String> = ["model", "messages", "system", "max_tokens", "stream", "temperature", "top_p", "stop_sequences"]
    /// `provider_options` keys that also change what `count_tokens` counts.
    static let countedOptionKeys: Set<String> = ["tools", "tool_choice", "thinking", "mcp_servers"]
    /// What the warm-up request of a prefix cache asks the model to write: as little as possible.
    static let warmUpMaxTokens = 1

    enum Purpose: Equatable {
        case generate(stream: Bool)
        /// `POST /v1/messages/count_tokens`: the same body without `max_tokens` and sampling.
        case countTokens
        /// The request that writes a prefix cache (`CachingCapability.createCache`).
        case warmUp
    }

    private struct Message {
        var role: String
        var blocks: [JSONValue]
    }

    func body(for request: GenerationRequest, purpose: Purpose) throws(APIError) -> JSONValue {
        let prefix = Self.prefixPartCount(request)
        var messages: [Message] = []
        var breakpoint: (message: Int, block: Int)?
        func append(_ role: String, _ block: JSONValue) {
            if messages.last?.role == role {
                messages[messages.count - 1].blocks.append(block)
            } else {
                messages.append(Message(role: role, blocks: [block]))
            }
        }
        for (index, part) in request.parts.enumerated() {
            switch part {
            case .history(let history):
                for turn in history {
                    // The API rejects empty text blocks.
                    if !turn.question.isEmpty { append("user", Self.text(turn.question)) }
                    if !turn.answer.isEmpty { append("assistant", Self.text(turn.answer)) }
                    for call in turn.toolCalls { append("assistant", AnthropicTools.toolUse(call)) }
                }
            default:
                if let block = try block(part, index: index) { append("user", block) }
            }
            if let prefix, index < prefix, let last = messages.last {
                breakpoint = (messages.count - 1, last.blocks.count - 1)
            }
        }
        if purpose == .warmUp, messages.last?.role != "user" {
            // The cached prefix ends the warm-up; a request must still end with a user turn.
            messages.append(Message(role: "user", blocks: [Self.text(".")]))
        }

        let cacheControl: JSONValue? = purpose == .countTokens ? Optional<JSONValue>.none : request.cache.flatMap(Self.cacheControl)
        if let cacheControl, let at = breakpoint, case .object(var block) = messages[at.message].blocks[at.block] {
            block["cache_control"] = cacheControl
            messages[at.message].blocks[at.block] = .object(block)
        }

        var body = JSONObject()
        body["model"] = .string(request.model)
        if let system = request.config.systemInstruction, !system.isEmpty {
            if prefix != nil {
                // Blocks, so the cached prefix is the same in every request; the breakpoint goes
                // here only when no cached part produced a block.
                var block = JSONObject()
                block["type"] = "text"
                block["text"] = .string(system)
                if breakpoint == nil, let cacheControl { block["cache_control"] = cacheControl }
                body["system"] = [.object(block)]
            } else {
                body["system"] = .string(system)
            }
        }
        body["messages"] = .array(messages.map { ["role": .string($0.role), "content": Self.content($0.blocks)] })

        let config = request.config
        // Tools head the cached prefix (tools → system → messages), so every purpose sends them.
        if let tools = config.tools, !tools.isEmpty { body["tools"] = AnthropicTools.tools(tools) }
        if let choice = config.toolChoice { body["tool_choice"] = AnthropicTools.toolChoice(choice) }
        if purpose != .countTokens {
            body["max_tokens"] = .int(purpose == .warmUp ? Self.warmUpMaxTokens : (config.maxTokens ?? configuration.defaultMaxTokens))
            if purpose != .warmUp {
                if let t = config.temperature { body["temperature"] = .double(t) }
                if let p = config.topP { body["top_p"] = .double(p) }
                if let stop = config.stop, !stop.isEmpty { body["stop_sequences"] = .array(stop.map(JSONValue.string)) }
                if let format = config.responseFormat, let outputConfig = try outputConfig(format) { body["output_config"] = outputConfig }
            }
            if purpose == .generate(stream: true) { body["stream"] = true }
        }
        // `seed` is not sent: the Messages API has no seed.
        for (key, value) in config.providerOptions {
            if Self.reservedKeys.contains(key) || (key == "output_config" && body["output_config"] != nil) {
                throw APIError(
                    .invalidCommand,
                    "config.provider_options.\(key) would override the '\(key)' the anthropic adapter sets itself; "
                        + "use the command's own config keys (system_instruction, temperature, top_p, max_tokens, stop, response_format) instead",
                    path: "config.provider_options.\(key)", provider: providerName)
            }
            if (key == "tools" || key == "tool_choice") && body[key] != nil {
                throw APIError(
                    .invalidCommand, "config.provider_options.\(key) cannot be set beside config.tools and config.tool_choice: give the tools in one place",
                    path: "config.provider_options.\(key)", provider: providerName)
            }
            if purpose == .countTokens && !Self.countedOptionKeys.contains(key) { continue }
            if purpose == .warmUp { continue }
            body[key] = value
        }
        return .object(body)
    }

    /// How many leading parts a prefix cache covers, or nil when the request uses none.
    static func prefixPartCount(_ request: GenerationRequest) -> Int? {
        guard let cache = request.cache, let count = cache.prefixPartCount else { return nil }
        return min(max(0, count), request.parts.count)
    }

    /// `{"type":"ephemeral","ttl":…}`: `5m` for a plan TTL up to five minutes, else `1h`.
    /// A stored (non-prefix) reference is not this adapter's and gets no breakpoint.
    static func cacheControl(_ cache: CacheReference) -> JSONValue? {
        guard cache.prefixPartCount != nil else { return nil }
        return ["type": "ephemeral", "ttl": .string(ttl(cache))]
    }

    static func ttl(_ cache: CacheReference) -> String {
        guard let expiry = cache.expiresAt else { return "5m" }
        return expiry.timeIntervalSince(cache.createdAt) <= 300 ? "5m" : "1h"
    }

    static func text(_ text: String) -> JSONValue { ["type": "text", "text": .string(text)] }

    /// A turn's content: a single plain text block (no cache breakpoint) goes as a plain string,
    /// the form every Messages server accepts (some compatible ones take nothing else); the rest as blocks.
    static func content(_ blocks: [JSONValue]) -> JSONValue {
        if blocks.count == 1, case .object(let block) = blocks[0], block.count == 2, block["type"]?.stringValue == "text", let text = block["text"],
            case .string = text
        {
            return text
        }
        return .array(blocks)
    }

    private func outputConfig(_ format: JSONValue) throws(APIError) -> JSONValue? {
        let type = format.objectValue?["type"]?.stringValue
        switch type {
        case "text":
            return nil
        case "json_schema":
            let object = format.objectValue
            guard let schema = object?["json_schema"]?.objectValue?["schema"] ?? object?["schema"], schema.objectValue != nil else {
                throw APIError(
                    .invalidCommand, "config.response_format of type json_schema has no schema object (json_schema.schema)",
                    path: "config.response_format", provider: providerName)
            }
            return ["format": ["type": "json_schema", "schema": schema]]
        default:
            throw APIError(
                .capabilityMissing, "config.response_format of type '\(type ?? format.typeName)' has no Anthropic equivalent: use {\"type\":\"json_schema\",…} or describe the format in the prompt",
                path: "config.response_format", provider: providerName)
        }
    }

    /// The content block of one part; nil for an empty text (the API rejects empty text blocks).
    private func block(_ part: APIPart, index: Int) throws(APIError) -> JSONValue? {
        switch part {
        case .text(let text):
            // Not `text.isEmpty ? nil : …`: there `nil` would be JSONValue's null literal.
            if text.isEmpty { return Optional<JSONValue>.none }
            return Self.text(text)
        case .inline(let inline):
            let mime = inline.mimeType.lowercased()
            let base64 = inline.data.base64EncodedString()
            if Self.imageTypes.contains(mime) {
                return ["type": "image", "source": ["type": "base64", "media_type": .string(mime), "data": .string(base64)]]
            }
            if mime == "application/pdf" {
                return ["type": "document", "source": ["type": "base64", "media_type": "application/pdf", "data": .string(base64)]]
            }
            if mime == "text/plain" {
                return ["type": "document", "source": ["type": "text", "media_type": "text/plain", "data": .string(String(decoding: inline.data, as: UTF8.self))]]
            }
            throw missing(index, "inline \(inline.mimeType) data", "send images (jpeg, png, gif, webp), PDFs or plain text")
        case .fileRef(let ref):
            let mime = ref.mimeType.lowercased()
            let isImage = mime.hasPrefix("image/")
            if ref.uri.hasPrefix("https://") || ref.uri.hasPrefix("http://") {
                guard isImage || mime == "application/pdf" else {
                    throw missing(index, "file_ref \(ref.uri) (\(ref.mimeType))", "only images and PDFs can be sent by URL")
                }
                return [
                    "type": isImage ? "image" : "document", "source": ["type": "url", "url": .string(ref.uri)],
                ]
            }
            guard ref.uri.hasPrefix("file_") || !ref.uri.contains(":") else {
                throw missing(index, "file_ref \(ref.uri)", "reference an Anthropic Files API id (file_…) or an https URL")
            }
            return ["type": isImage ? "image" : "document", "source": ["type": "file", "file_id": .string(ref.uri)]]
        case .filePlaceholder(let placeholder):
            throw missing(
                index, "file_placeholder '\(placeholder.path)'",
                "the file was not uploaded: declare the uploads capability (Files API) or send it as an inline part")
        case .toolResult(let result):
            return AnthropicTools.toolResult(result)
        case .history:
            preconditionFailure("history parts become messages")
        }
    }

    static let imageTypes: Set<String> = ["image/jpeg", "image/png", "image/gif", "image/webp"]

    private func missing(_ index: Int, _ what: String, _ fix: String) -> APIError {
        APIError(.capabilityMissing, "request part \(index), \(what), cannot be sent to Anthropic: \(fix)", path: "parts[\(index)]", provider: providerName)
    }
}
