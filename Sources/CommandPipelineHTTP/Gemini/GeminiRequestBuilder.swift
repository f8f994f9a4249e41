import CommandPipeline
import Foundation

/// Turns a `GenerationRequest` into a `generateContent` body (and a cache's content into a
/// `cachedContents` body). Parts the API cannot take, and `provider_options` that would
/// override what the adapter sets, fail here, before anything is sent.
struct GeminiRequestBuilder {
    let providerName: String

    /// `provider_options` keys the request is built from: set them through `config` instead.
    /// Compared without underscores and case, so `max_output_tokens` is caught too.
    static let reservedOptions: [String: String] = [
        "contents": "the call's parts", "systeminstruction": "config.system_instruction", "cachedcontent": "plan.cache",
        "generationconfig": "provider_options' own keys (they are merged into generationConfig)", "model": "the call's model",
        "temperature": "config.temperature", "topp": "config.top_p", "maxoutputtokens": "config.max_tokens",
        "stopsequences": "config.stop", "seed": "config.seed", "responsemimetype": "config.response_format",
        "responseschema": "config.response_format", "responsejsonschema": "config.response_format",
    ]

    /// `provider_options` keys that belong to the request itself, not to `generationConfig`.
    static let requestLevelOptions: Set<String> = ["safetysettings", "tools", "toolconfig", "labels", "servicetier"]

    static func normalized(_ key: String) -> String { key.replacingOccurrences(of: "_", with: "").lowercased() }

    /// The `generateContent` / `streamGenerateContent` body.
    func body(for request: GenerationRequest) throws(APIError) -> JSONValue {
        var body = JSONObject()
        body["contents"] = .array(try contents(request.parts))
        if let cache = request.cache {
            guard request.config.systemInstruction == nil else {
                throw APIError(
                    .invalidCommand,
                    "a request that uses cache '\(cache.id)' cannot also carry a system instruction: Gemini keeps it in the cache (send the call without config.system_instruction)",
                    provider: providerName)
            }
            guard cache.model == request.model else {
                throw APIError(
                    .invalidCommand, "cache '\(cache.id)' was made for model '\(cache.model)' and cannot serve model '\(request.model)'",
                    provider: providerName)
            }
            body["cachedContent"] = .string(cache.id)
        } else if let system = request.config.systemInstruction {
            body["systemInstruction"] = Self.systemInstruction(system)
        }
        let config = request.config
        if config.tools != nil || config.toolChoice != nil, let cache = request.cache {
            throw APIError(
                .capabilityMissing,
                "a request that uses cache '\(cache.id)' cannot also carry tools: Gemini keeps them in the cache, which holds the shared parts only; run tool calls without plan.cache",
                path: "config.tools", provider: providerName)
        }
        if let tools = config.tools, !tools.isEmpty { body["tools"] = GeminiTools.tools(tools) }
        if let choice = config.toolChoice { body["toolConfig"] = GeminiTools.toolConfig(choice) }
        var generation = try generationConfig(request.config)
        for (key, value) in request.config.providerOptions {
            let name = Self.normalized(key)
            if (name == "tools" && body["tools"] != nil) || (name == "toolconfig" && body["toolConfig"] != nil) {
                throw APIError(
                    .invalidCommand, "config.provider_options.\(key) cannot be set beside config.tools and config.tool_choice: give the tools in one place",
                    path: "config.provider_options.\(key)", provider: providerName)
            }
            if let instead = Self.reservedOptions[name] {
                throw APIError(
                    .invalidCommand,
                    "config.provider_options.\(key) would override what the gemini adapter sets; use \(instead) instead",
                    path: "config.provider_options.\(key)", provider: providerName)
            }
            if Self.requestLevelOptions.contains(name) {
                body[key] = value
            } else {
                generation[key] = value
            }
        }
        if !generation.isEmpty { body["generationConfig"] = .object(generation) }
        return .object(body)
    }

    /// The `cachedContents.create` body: the shared parts and the system instruction, with the TTL.
    func cacheBody(for request: CacheRequest, displayName: String) throws(APIError) -> JSONValue {
        var body = JSONObject()
        body["model"] = .string(Self.modelName(request.model))
        body["displayName"] = .string(displayName)
        body["contents"] = .array(try contents(request.parts))
        if let system = request.systemInstruction { body["systemInstruction"] = Self.systemInstruction(system) }
        body["ttl"] = .string("\(max(1, request.ttlSeconds))s")
        return .object(body)
    }

    /// The `countTokens` body: the whole generate request (so a system instruction and a
    /// cache are counted too), as the API takes it under `generateContentRequest`.
    func countBody(for request: GenerationRequest) throws(APIError) -> JSONValue {
        guard case .object(var inner) = try body(for: request) else { preconditionFailure("body is an object") }
        inner["model"] = .string(Self.modelName(request.model))
        return ["generateContentRequest": .object(inner)]
    }

    /// The model's resource name for a JSON body (`models/…`, unescaped).
    static func modelName(_ model: String) -> String {
        model.hasPrefix("models/") || model.hasPrefix("tunedModels/") ? model : "models/" + model
    }

    static func systemInstruction(_ text: String) -> JSONValue {
        ["parts": [["text": .string(text)]]]
    }

    /// Parts as `Content`s: history turns become `user`/`model` pairs in place; the other
    /// parts gather into `user` contents between them.
    func contents(_ parts: [APIPart]) throws(APIError) -> [JSONValue] {
        var contents: [JSONValue] = []
        var pending: [JSONValue] = []
        func flush() {
            guard !pending.isEmpty else { return }
            contents.append(["role": "user", "parts": .array(pending)])
            pending = []
        }
        for (index, part) in parts.enumerated() {
            switch part {
            case .text(let text):
                pending.append(["text": .string(text)])
            case .inline(let inline):
                pending.append(["inlineData": ["mimeType": .string(inline.mimeType), "data": .string(inline.data.base64EncodedString())]])
            case .fileRef(let ref):
                pending.append(["fileData": ["mimeType": .string(ref.mimeType), "fileUri": .string(ref.uri)]])
            case .filePlaceholder(let placeholder):
                throw APIError(
                    .capabilityMissing,
                    "request part \(index), file_placeholder '\(placeholder.path)', was not uploaded, so it cannot be sent to Gemini: make its upload required (upload_tasks) or send the bytes as an inline part",
                    path: "parts[\(index)]", provider: providerName)
            case .toolResult(let result):
                pending.append(GeminiTools.functionResponse(result))
            case .history(let history):
                flush()
                for turn in history {
                    // A turn without a question is the model's alone (a rejected answer before its correction).
                    if !turn.question.isEmpty { contents.append(["role": "user", "parts": [["text": .string(turn.question)]]]) }
                    var modelParts: [JSONValue] = turn.answer.isEmpty && !turn.toolCalls.isEmpty ? [] : [["text": .string(turn.answer)]]
                    modelParts += turn.toolCalls.map(GeminiTools.functionCall)
                    contents.append(["role": "model", "parts": .array(modelParts)])
                }
            }
        }
        flush()
        return contents
    }

    /// The typed config as `generationConfig`.
    func generationConfig(_ config: GenerationConfig) throws(APIError) -> JSONObject {
        var generation = JSONObject()
        if let t = config.temperature { generation["temperature"] = .double(t) }
        if let p = config.topP { generation["topP"] = .double(p) }
        if let m = config.maxTokens { generation["maxOutputTokens"] = .int(m) }
        if let stop = config.stop {
            guard stop.count <= 5 else {
                throw APIError(
                    .invalidCommand, "config.stop has \(stop.count) sequences; Gemini takes at most 5", provider: providerName)
            }
            generation["stopSequences"] = .array(stop.map(JSONValue.string))
        }
        if let seed = config.seed {
            guard let seed32 = Int32(exactly: seed) else {
                throw APIError(.invalidCommand, "config.seed \(seed) does not fit Gemini's 32-bit seed", provider: providerName)
            }
            generation["seed"] = .int(Int(seed32))
        }
        if let format = config.responseFormat { try responseFormat(format, into: &generation) }
        return generation
    }

    /// `response_format` in the OpenAI shape (`text`, `json_object`, `json_schema`) as
    /// `responseMimeType` and `responseJsonSchema`.
    private func responseFormat(_ format: JSONValue, into generation: inout JSONObject) throws(APIError) {
        func invalid(_ why: String) -> APIError {
            APIError(
                .invalidCommand,
                "config.response_format \(why); use {\"type\":\"text\"}, {\"type\":\"json_object\"} or {\"type\":\"json_schema\",\"json_schema\":{\"schema\":{…}}}",
                provider: providerName)
        }
        guard let object = format.objectValue, let type = object["type"]?.stringValue else { throw invalid("has no \"type\"") }
        switch type {
        case "text":
            generation["responseMimeType"] = "text/plain"
        case "json_object":
            generation["responseMimeType"] = "application/json"
        case "json_schema":
            let nested = object["json_schema"]?.objectValue
            guard let schema = nested?["schema"] ?? object["schema"], schema.objectValue != nil else { throw invalid("of type json_schema has no schema object") }
            generation["responseMimeType"] = "application/json"
            generation["responseJsonSchema"] = schema
        default:
            throw invalid("has the unknown type '\(type)'")
        }
    }
}
