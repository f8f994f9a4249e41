import CommandPipeline
import Foundation

/// Turns a `GenerationRequest` into a Chat Completions body. Parts the server cannot take
/// fail here, before anything is sent, with `capability_missing` naming the part.
struct ChatRequestBuilder {
    let configuration: OpenAIConfiguration
    let providerName: String

    var acceptsFiles: Bool { configuration.capabilities.contains(.uploads) }

    func body(for request: GenerationRequest, stream: Bool) throws(APIError) -> JSONValue {
        var messages: [JSONValue] = []
        if let system = request.config.systemInstruction ?? nil {
            messages.append(["role": "system", "content": .string(system)])
        }
        var content: [JSONValue] = []
        func flushUser() {
            guard !content.isEmpty else { return }
            if content.count == 1, case .object(let only) = content[0], only["type"] == "text", let text = only["text"] {
                messages.append(["role": "user", "content": text])
            } else {
                messages.append(["role": "user", "content": .array(content)])
            }
            content = []
        }
        for (index, part) in request.parts.enumerated() {
            switch part {
            case .history(let history):
                flushUser()
                for turn in history {
                    // A turn without a question is the assistant's alone (a rejected answer before its correction).
                    if !turn.question.isEmpty { messages.append(["role": "user", "content": .string(turn.question)]) }
                    messages.append(ChatTools.assistantMessage(turn))
                }
            case .toolResult(let result):
                flushUser()
                messages.append(ChatTools.toolMessage(result))
            default:
                content.append(try contentPart(part, index: index))
            }
        }
        flushUser()

        var body = JSONObject()
        body["model"] = .string(request.model)
        body["messages"] = .array(messages)
        let config = request.config
        if let t = config.temperature { body["temperature"] = .double(t) }
        if let p = config.topP { body["top_p"] = .double(p) }
        if let m = config.maxTokens { body[configuration.maxTokensField] = .int(m) }
        if let stop = config.stop { body["stop"] = stop.count == 1 ? .string(stop[0]) : .array(stop.map(JSONValue.string)) }
        if let seed = config.seed { body["seed"] = .int(seed) }
        if let format = config.responseFormat { body["response_format"] = format }
        if let tools = config.tools, !tools.isEmpty { body["tools"] = ChatTools.tools(tools) }
        if let choice = config.toolChoice { body["tool_choice"] = ChatTools.toolChoice(choice) }
        if stream {
            body["stream"] = true
            body["stream_options"] = ["include_usage": true]
        }
        // Provider-specific keys win over the typed ones, but not over the keys the adapter owns.
        for (key, value) in config.providerOptions {
            if let reason = Self.reservedKeys[key] {
                throw APIError(
                    .invalidCommand, "config.provider_options.\(key) cannot be set: \(reason); remove it from provider_options",
                    path: "config.provider_options.\(key)", provider: providerName)
            }
            if (key == "tools" || key == "tool_choice") && body[key] != nil {
                throw APIError(
                    .invalidCommand, "config.provider_options.\(key) cannot be set beside config.tools and config.tool_choice: give the tools in one place",
                    path: "config.provider_options.\(key)", provider: providerName)
            }
            body[key] = value
        }
        return .object(body)
    }

    /// Body keys `provider_options` may not override, with why: each changes what comes back
    /// (a stream where a whole answer is parsed, several answers where one is read, another
    /// model or conversation than the plan's).
    static let reservedKeys: [String: String] = [
        "model": "the call's model is the plan's `model`",
        "messages": "messages are built from the call's parts and system instruction",
        "stream": "whether to stream is the engine's choice (a streamed answer would not parse as a whole one)",
        "stream_options": "the adapter asks for usage in streams itself",
        "n": "one call reads one answer; plan several calls instead",
    ]

    private func contentPart(_ part: APIPart, index: Int) throws(APIError) -> JSONValue {
        switch part {
        case .text(let text):
            return ["type": "text", "text": .string(text)]
        case .inline(let inline):
            let base64 = inline.data.base64EncodedString()
            if inline.mimeType.hasPrefix("image/") {
                return ["type": "image_url", "image_url": ["url": .string("data:\(inline.mimeType);base64,\(base64)")]]
            }
            if inline.mimeType == "audio/wav" || inline.mimeType == "audio/mpeg" || inline.mimeType == "audio/mp3" {
                return ["type": "input_audio", "input_audio": ["data": .string(base64), "format": .string(inline.mimeType == "audio/wav" ? "wav" : "mp3")]]
            }
            if inline.mimeType == "application/pdf" && acceptsFiles {
                return ["type": "file", "file": ["file_data": .string("data:application/pdf;base64,\(base64)"), "filename": .string("part-\(index).pdf")]]
            }
            throw missing(index, "inline \(inline.mimeType) data", "send images (image/*), wav/mp3 audio, or PDFs to a server with uploads")
        case .fileRef(let ref):
            let isURL = ref.uri.hasPrefix("http://") || ref.uri.hasPrefix("https://") || ref.uri.hasPrefix("data:")
            if isURL {
                guard ref.mimeType.hasPrefix("image/") else {
                    throw missing(index, "file_ref \(ref.uri) (\(ref.mimeType))", "only images can be sent by URL")
                }
                return ["type": "image_url", "image_url": ["url": .string(ref.uri)]]
            }
            guard acceptsFiles else {
                throw missing(index, "file_ref \(ref.uri) (\(ref.mimeType))", "this server was declared without uploads, so it takes no file parts; declare uploads if it has a Files API")
            }
            return ["type": "file", "file": ["file_id": .string(ref.uri)]]
        case .filePlaceholder(let placeholder):
            throw missing(index, "file_placeholder '\(placeholder.path)'", "the file was not uploaded: declare uploads if the server has a Files API, or send images as inline parts")
        case .history, .toolResult:
            preconditionFailure("history and tool_result parts become messages")
        }
    }

    private func missing(_ index: Int, _ what: String, _ fix: String) -> APIError {
        APIError(.capabilityMissing, "request part \(index), \(what), cannot be sent to this OpenAI-compatible server: \(fix)", path: "parts[\(index)]",
            provider: providerName)
    }
}
