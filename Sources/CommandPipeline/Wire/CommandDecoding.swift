import Foundation

/// A command the wire could not turn into a `PlannedCommand`, with what is needed to
/// still write its result line: the id and metadata when they were readable.
package struct CommandRejection: Error, Sendable, Hashable {
    package var id: String
    package var metadata: JSONObject
    /// Every problem found, each with its field path.
    package var issues: [ValidationIssue]

    /// One `invalid_command` error listing every issue; `path` is the first issue's.
    package var error: APIError {
        let message = issues.count == 1
            ? issues[0].message
            : "\(issues.count) problems: " + issues.map(\.description).joined(separator: "; ")
        return APIError(.invalidCommand, message, path: issues.first?.path)
    }
}

/// The wire format of WIRE-FORMAT.md: full commands and the shorthand for people.
package enum WireFormat {
    static let commandKeys = ["id", "plan", "token_estimate", "per_call_estimates", "metadata"]
    static let shorthandKeys = ["id", "model", "prompt", "prompts", "system", "files", "fallback_model", "cache", "metadata", "token_estimate", "response_format", "max_repairs", "tools", "tool_choice"]
    static let planKeys = ["calls", "shared_parts", "fallback_call", "upload_tasks", "cache", "rate_constraint"]

    /// Reads one command. `position` is 1-based and names commands without an id (`cmd-N`).
    package static func command(from value: JSONValue, position: Int) -> Result<PlannedCommand, CommandRejection> {
        validatedCommand(from: value, position: position).map(\.command)
    }

    /// `command(from:position:)` as the value its validation made: the engine runs it without
    /// validating it again (`ValidatedCommand`).
    package static func validatedCommand(from value: JSONValue, position: Int) -> Result<ValidatedCommand, CommandRejection> {
        decodedCommand(from: value, position: position).flatMap { command in
            var issues: [ValidationIssue] = []
            if let validated = ValidatedCommand(checking: command, issues: &issues) { return .success(validated) }
            return .failure(CommandRejection(id: command.id, metadata: command.metadata, issues: issues))
        }
    }

    /// Reads one command without checking its rules (`validationIssues()`): for a command the
    /// engine will check itself, such as a hook's replacement (`--hook-exec`), which the engine
    /// validates when it takes it, so it is validated once.
    package static func decodedCommand(from value: JSONValue, position: Int) -> Result<PlannedCommand, CommandRejection> {
        var reader = WireReader()
        let fallbackID = "cmd-\(position)"
        guard case .object(let object) = value else {
            reader.fail("expected a command object, found \(value.typeName)")
            return .failure(CommandRejection(id: fallbackID, metadata: [:], issues: reader.issues))
        }
        let id = reader.field(object, "id") { r, v in r.string(v) } ?? fallbackID
        let metadata = reader.field(object, "metadata") { r, v -> JSONObject? in
            if case .object(let o) = v { return o }
            r.fail("expected metadata as an object, found \(v.typeName)")
            return nil
        } ?? [:]

        let command: PlannedCommand?
        if object["plan"] != nil {
            command = full(object, id: id, metadata: metadata, &reader)
        } else if object["model"] != nil || object["prompt"] != nil || object["prompts"] != nil {
            command = shorthand(object, id: id, metadata: metadata, &reader)
        } else {
            reader.fail("a command needs 'plan', or the shorthand 'model' with 'prompt' or 'prompts'")
            command = nil
        }
        if reader.issues.isEmpty, let command { return .success(command) }
        return .failure(CommandRejection(id: id, metadata: metadata, issues: reader.issues))
    }

    static func full(_ object: JSONObject, id: String, metadata: JSONObject, _ r: inout WireReader) -> PlannedCommand? {
        _ = r.object(.object(object), known: commandKeys, what: "a command")
        let plan = r.field(object, "plan", required: true) { r, v in Self.plan(v, &r) }
        let estimate = r.field(object, "token_estimate") { r, v in tokenEstimate(v, &r) }
        let perCall = r.field(object, "per_call_estimates") { r, v in r.array(v) { r, e in tokenEstimate(e, &r) } } ?? []
        guard let plan else { return nil }
        return PlannedCommand(id: id, plan: plan, tokenEstimate: estimate, perCallEstimates: perCall, metadata: metadata)
    }

    static func shorthand(_ object: JSONObject, id: String, metadata: JSONObject, _ r: inout WireReader) -> PlannedCommand? {
        _ = r.object(.object(object), known: shorthandKeys, what: "a shorthand command")
        let model = r.field(object, "model", required: true) { r, v in r.string(v) }
        let prompt = r.field(object, "prompt") { r, v in r.string(v) }
        let prompts = r.field(object, "prompts") { r, v in r.array(v) { r, e in r.string(e) } }
        let system = r.field(object, "system") { r, v in r.string(v) }
        let files = r.field(object, "files") { r, v in r.array(v) { r, e in r.string(e) } } ?? []
        let fallbackModel = r.field(object, "fallback_model") { r, v in r.string(v) }
        let cache = r.field(object, "cache") { r, v in cachePlan(v, &r) }
        let estimate = r.field(object, "token_estimate") { r, v in tokenEstimate(v, &r) }
        let maxRepairs = r.field(object, "max_repairs") { r, v in r.int(v) }
        let tools = r.field(object, "tools") { r, v in Self.tools(v, &r) }
        let toolChoice = r.field(object, "tool_choice") { r, v in Self.toolChoice(v, &r) }

        var texts: [String] = []
        switch (prompt, prompts) {
        case (let p?, nil): texts = [p]
        case (nil, let ps?):
            if ps.isEmpty { r.at("prompts") { $0.fail("prompts must contain at least one prompt") } }
            texts = ps
        case (.some, .some): r.fail("give either 'prompt' or 'prompts', not both")
        case (nil, nil):
            if object["prompt"] == nil && object["prompts"] == nil { r.fail("the shorthand needs 'prompt' or 'prompts'") }
        }
        if fallbackModel != nil && texts.count > 1 {
            r.at("fallback_model") { $0.fail("fallback_model works with a single 'prompt' only; use a full plan for fallback of many calls") }
        }
        guard let model else { return nil }
        var config = GenerationConfig(systemInstruction: system, responseFormat: object["response_format"].flatMap { $0 == .null ? nil : $0 })
        config.maxRepairs = maxRepairs
        config.tools = tools
        config.toolChoice = toolChoice
        let calls = texts.map { APICall(model: model, parts: [.text($0)], config: config) }
        let shared = files.map { APIPart.filePlaceholder(FilePlaceholder(path: $0)) }
        let fallback = fallbackModel.map { APICall(model: $0, parts: calls.first?.parts ?? [], config: config) }
        return PlannedCommand(
            id: id, plan: ExecutionPlan(calls: calls, sharedParts: shared, fallbackCall: fallback, cache: cache),
            tokenEstimate: estimate, metadata: metadata)
    }

    static func plan(_ value: JSONValue, _ r: inout WireReader) -> ExecutionPlan? {
        guard let object = r.object(value, known: planKeys, what: "plan") else { return nil }
        let calls = r.field(object, "calls", required: true) { r, v in r.array(v) { r, e in call(e, &r) } }
        let shared = r.field(object, "shared_parts") { r, v in r.array(v) { r, e in part(e, &r) } } ?? []
        let fallback = r.field(object, "fallback_call") { r, v in call(v, &r) }
        let uploads = r.field(object, "upload_tasks") { r, v in r.array(v) { r, e in uploadTask(e, &r) } } ?? []
        let cache = r.field(object, "cache") { r, v in cachePlan(v, &r) }
        let rate = r.field(object, "rate_constraint") { r, v in rateConstraint(v, &r) }
        guard let calls else { return nil }
        return ExecutionPlan(calls: calls, sharedParts: shared, fallbackCall: fallback, uploadTasks: uploads, cache: cache, rateConstraint: rate)
    }

    static func call(_ value: JSONValue, _ r: inout WireReader) -> APICall? {
        guard let object = r.object(value, known: ["model", "parts", "config"], what: "a call") else { return nil }
        let model = r.field(object, "model", required: true) { r, v in r.string(v) }
        let parts = r.field(object, "parts", required: true) { r, v in r.array(v) { r, e in part(e, &r) } }
        let config = r.field(object, "config") { r, v in Self.config(v, &r) } ?? GenerationConfig()
        guard let model, let parts else { return nil }
        return APICall(model: model, parts: parts, config: config)
    }

    static let partKeys: [String: [String]] = [
        "text": ["type", "text"], "file_ref": ["type", "uri", "mime_type"],
        "file_placeholder": ["type", "path", "mime_type", "ephemeral"], "inline": ["type", "mime_type", "data"],
        "history": ["type", "turns"], "tool_result": ["type", "id", "name", "content", "is_error"],
    ]

    static func part(_ value: JSONValue, _ r: inout WireReader) -> APIPart? {
        guard case .object(let object) = value else {
            r.fail("expected a part object, found \(value.typeName)")
            return nil
        }
        guard let type = r.field(object, "type", required: true, { r, v in r.string(v) }) else { return nil }
        guard let known = partKeys[type] else {
            r.at("type") { $0.fail("unknown part type '\(type)'; known types: text, file_ref, file_placeholder, inline, history, tool_result") }
            return nil
        }
        guard r.object(value, known: known, what: "a \(type) part") != nil else { return nil }
        switch type {
        case "text":
            return r.field(object, "text", required: true) { r, v in r.string(v) }.map(APIPart.text)
        case "file_ref":
            let uri = r.field(object, "uri", required: true) { r, v in r.string(v) }
            let mime = r.field(object, "mime_type", required: true) { r, v in r.string(v) }
            guard let uri, let mime else { return nil }
            return .fileRef(FileReference(uri: uri, mimeType: mime))
        case "file_placeholder":
            let path = r.field(object, "path", required: true) { r, v in r.string(v) }
            let mime = r.field(object, "mime_type") { r, v in r.string(v) }
            let ephemeral = r.field(object, "ephemeral") { r, v in r.bool(v) } ?? false
            guard let path else { return nil }
            return .filePlaceholder(FilePlaceholder(path: path, mimeType: mime, ephemeral: ephemeral))
        case "inline":
            let mime = r.field(object, "mime_type", required: true) { r, v in r.string(v) }
            let data = r.field(object, "data", required: true) { r, v -> Data? in
                guard let text = r.string(v) else { return nil }
                guard let data = Data(base64Encoded: text) else {
                    r.fail("data must be base64 (RFC 4648, with padding)")
                    return nil
                }
                return data
            }
            guard let mime, let data else { return nil }
            return .inline(InlineData(mimeType: mime, data: data))
        case "tool_result":
            return toolResult(object, &r).map(APIPart.toolResult)
        default:
            let turns = r.field(object, "turns", required: true) { r, v in
                r.array(v) { r, e -> HistoryTurn? in
                    guard let turn = r.object(e, known: ["question", "answer", "tool_calls"], what: "a history turn") else { return nil }
                    // A turn whose answer is tool calls alone may leave out its text (and its question).
                    let calls = r.field(turn, "tool_calls") { r, v in r.array(v) { r, e in toolCall(e, &r) } }
                    let q = r.field(turn, "question", required: calls == nil) { r, v in r.string(v) }
                    let a = r.field(turn, "answer", required: calls == nil) { r, v in r.string(v) }
                    guard calls != nil || (q != nil && a != nil) else { return nil }
                    return HistoryTurn(question: q ?? "", answer: a ?? "", toolCalls: calls ?? [])
                }
            }
            return turns.map { .history($0) }
        }
    }

    static func config(_ value: JSONValue, _ r: inout WireReader) -> GenerationConfig? {
        guard let object = r.object(value, known: GenerationConfig.knownKeys, what: "config (provider-specific keys go under provider_options)") else { return nil }
        var config = GenerationConfig()
        config.systemInstruction = r.field(object, "system_instruction") { r, v in r.string(v) }
        config.temperature = r.field(object, "temperature") { r, v in r.double(v) }
        config.topP = r.field(object, "top_p") { r, v in r.double(v) }
        config.maxTokens = r.field(object, "max_tokens") { r, v in r.int(v) }
        config.stop = r.field(object, "stop") { r, v -> [String]? in
            if case .string(let s) = v { return [s] }
            return r.array(v) { r, e in r.string(e) }
        }
        config.seed = r.field(object, "seed") { r, v in r.int(v) }
        config.responseFormat = object["response_format"].flatMap { $0 == .null ? nil : $0 }
        config.maxRepairs = r.field(object, "max_repairs") { r, v in r.int(v) }
        config.tools = r.field(object, "tools") { r, v in tools(v, &r) }
        config.toolChoice = r.field(object, "tool_choice") { r, v in toolChoice(v, &r) }
        config.providerOptions = r.field(object, "provider_options") { r, v -> JSONObject? in
            if case .object(let o) = v { return o }
            r.fail("expected provider_options as an object, found \(v.typeName)")
            return nil
        } ?? [:]
        return config
    }

    static func uploadTask(_ value: JSONValue, _ r: inout WireReader) -> UploadTask? {
        guard let object = r.object(value, known: ["part_index", "call_index", "shared", "required"], what: "an upload task") else { return nil }
        let partIndex = r.field(object, "part_index", required: true) { r, v in r.int(v) }
        let callIndex = r.field(object, "call_index") { r, v in r.int(v) }
        let shared = r.field(object, "shared") { r, v in r.bool(v) } ?? false
        let required = r.field(object, "required") { r, v in r.bool(v) } ?? true
        if shared && callIndex != nil { r.fail("give either call_index or \"shared\": true, not both") }
        guard let partIndex else { return nil }
        return UploadTask(partIndex: partIndex, callIndex: shared ? nil : callIndex ?? 0, required: required)
    }

    static func cachePlan(_ value: JSONValue, _ r: inout WireReader) -> CachePlan? {
        guard let object = r.object(value, known: ["ttl_seconds", "key"], what: "cache") else { return nil }
        let ttl = r.field(object, "ttl_seconds") { r, v in r.int(v) } ?? 3600
        let key = r.field(object, "key") { r, v in r.string(v) }
        return CachePlan(ttlSeconds: ttl, key: key)
    }

    static func rateConstraint(_ value: JSONValue, _ r: inout WireReader) -> RateConstraint? {
        guard let object = r.object(value, known: ["requests_per_minute", "tokens_per_minute"], what: "rate_constraint") else { return nil }
        return RateConstraint(
            requestsPerMinute: r.field(object, "requests_per_minute") { r, v in r.int(v) },
            tokensPerMinute: r.field(object, "tokens_per_minute") { r, v in r.int(v) })
    }

    static func tokenEstimate(_ value: JSONValue, _ r: inout WireReader) -> TokenEstimate? {
        guard let object = r.object(value, known: ["min_tokens", "expected_tokens", "max_tokens", "confidence"], what: "a token estimate") else { return nil }
        let min = r.field(object, "min_tokens", required: true) { r, v in r.int(v) }
        let expected = r.field(object, "expected_tokens", required: true) { r, v in r.int(v) }
        let max = r.field(object, "max_tokens", required: true) { r, v in r.int(v) }
        let confidence = r.field(object, "confidence") { r, v in r.double(v) }
        guard let min, let expected, let max else { return nil }
        return TokenEstimate(minTokens: min, expectedTokens: expected, maxTokens: max, confidence: confidence)
    }
}
