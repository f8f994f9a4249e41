/// Checks a command against the model catalog before any upload or call (seed 001: inputs are
/// validated against what the model declares, with precise messages, before work starts).
///
/// For every call (and the fallback call), on a model the catalog knows:
/// - each part, shared ones included, must be of a modality the model accepts, else
///   `capability_missing` naming the part (`plan.calls[0].parts[1]`) and the model;
/// - a system instruction needs a model that takes one (`capability_missing`);
/// - `config.max_tokens` may not pass the model's maximum output (`invalid_command`);
/// - the call's input estimate may not pass the context window (`invalid_command`, with the
///   figures). The estimate is the planner's `per_call_estimates[i].min_tokens` when given, else
///   `TokenHeuristic` over the parts; with `check(_:catalog:counting:)`, a provider that can
///   count tokens counts the calls whose estimate is near or over the window, and its count decides.
///
/// A model the catalog does not know is not checked. `uncachedReason` says when the plan's cache
/// would be below the provider's minimum, so the command runs uncached instead.
package enum Preflight {
    /// The first problem of `command` against `catalog`, or nil.
    public static func check(_ command: PlannedCommand, catalog: ModelCatalog) -> APIError? {
        for (path, call, index) in calls(of: command) {
            guard let model = catalog.info(for: call.model) else { continue }
            if let problem = capabilityProblem(command, call: call, path: path, model: model) { return problem }
            if let problem = outputProblem(call, path: path, model: model) { return problem }
            let estimate = inputEstimate(command, call: call, index: index)
            if estimate.tokens > model.contextWindow { return contextProblem(call, path: path, model: model, tokens: estimate.tokens, how: estimate.how) }
        }
        return nil
    }

    /// As `check(_:catalog:)`, and where the estimate of a call is at least half the context
    /// window, `counting` counts its tokens and the count decides. Calls with parts that are not
    /// uploaded yet (file placeholders) are not counted: nothing is uploaded before the checks.
    /// A failed count falls back to the estimate.
    public static func check(_ command: PlannedCommand, catalog: ModelCatalog, counting: any TokenCountingCapability) async -> APIError? {
        for (path, call, index) in calls(of: command) {
            guard let model = catalog.info(for: call.model) else { continue }
            if let problem = capabilityProblem(command, call: call, path: path, model: model) { return problem }
            if let problem = outputProblem(call, path: path, model: model) { return problem }
            let estimate = inputEstimate(command, call: call, index: index)
            let parts = command.plan.sharedParts + call.parts
            if estimate.tokens * 2 >= model.contextWindow, !parts.contains(where: { $0.placeholder != nil }),
               let counted = try? await counting.countTokens(GenerationRequest(model: call.model, parts: parts, config: call.config)) {
                if counted > model.contextWindow { return contextProblem(call, path: path, model: model, tokens: counted, how: "counted by the provider") }
                continue
            }
            if estimate.tokens > model.contextWindow { return contextProblem(call, path: path, model: model, tokens: estimate.tokens, how: estimate.how) }
        }
        return nil
    }

    /// Why the plan's cache should not be made, when its shared context is clearly below the
    /// provider's minimum for the first call's model: only text parts are counted (a file's size
    /// in tokens is not known before upload, so plans with files are left to the provider).
    public static func uncachedReason(_ command: PlannedCommand, catalog: ModelCatalog) -> String? {
        guard command.plan.cache != nil, let first = command.plan.calls.first, let model = catalog.info(for: first.model),
              let minimum = model.minCacheTokens, !command.plan.sharedParts.isEmpty
        else { return nil }
        let shared = command.plan.sharedParts
        guard shared.allSatisfy({ Modality.of($0) == .text && $0.placeholder == nil && !isFile($0) }) else { return nil }
        let tokens = TokenHeuristic.tokens(of: shared).addingSaturating(TokenHeuristic.tokens(of: first.config.systemInstruction ?? ""))
        guard tokens < minimum else { return nil }
        return "the shared context is about \(tokens.grouped) tokens (estimated), below \(model.name)'s minimum cache size of \(minimum.grouped) tokens: the command runs uncached"
    }

    // MARK: the checks

    /// Each call with its path and (for primary calls) its index.
    private static func calls(of command: PlannedCommand) -> [(path: String, call: APICall, index: Int?)] {
        var list = command.plan.calls.enumerated().map { (path: "plan.calls[\($0.offset)]", call: $0.element, index: Optional($0.offset)) }
        if let fallback = command.plan.fallbackCall { list.append((path: "plan.fallback_call", call: fallback, index: nil)) }
        return list
    }

    private static func capabilityProblem(_ command: PlannedCommand, call: APICall, path: String, model: ModelInfo) -> APIError? {
        let parts = command.plan.sharedParts.enumerated().map { ("plan.shared_parts[\($0.offset)]", $0.element) }
            + call.parts.enumerated().map { ("\(path).parts[\($0.offset)]", $0.element) }
        for (partPath, part) in parts {
            guard let modality = Modality.of(part), !model.inputModalities.contains(modality) else { continue }
            let accepted = model.inputModalities.sorted().map(\.rawValue).joined(separator: ", ")
            return APIError(
                .capabilityMissing,
                "model '\(call.model)' does not accept \(modality.rawValue) input (\(describe(part))) at \(partPath); it accepts \(accepted): use a model that takes \(modality.rawValue), or leave the part out",
                path: partPath)
        }
        if call.config.systemInstruction != nil && !model.supportsSystemInstruction {
            return APIError(
                .capabilityMissing, "model '\(call.model)' takes no system instruction: put it in the prompt instead",
                path: "\(path).config.system_instruction")
        }
        return nil
    }

    private static func outputProblem(_ call: APICall, path: String, model: ModelInfo) -> APIError? {
        guard let asked = call.config.maxTokens, asked > model.maxOutputTokens else { return nil }
        return APIError(
            .invalidCommand,
            "config.max_tokens asks for \(asked.grouped) output tokens; model '\(call.model)' writes at most \(model.maxOutputTokens.grouped)",
            path: "\(path).config.max_tokens")
    }

    private static func contextProblem(_ call: APICall, path: String, model: ModelInfo, tokens: Int, how: String) -> APIError {
        APIError(
            .invalidCommand,
            "the input of \(path) is \(tokens.grouped) tokens (\(how)), more than the \(model.contextWindow.grouped)-token context window of '\(call.model)': split the input or use a model with a larger window",
            path: path)
    }

    private static func inputEstimate(_ command: PlannedCommand, call: APICall, index: Int?) -> (tokens: Int, how: String) {
        if let index, index < command.perCallEstimates.count {
            return (command.perCallEstimates[index].minTokens, "per_call_estimates[\(index)].min_tokens")
        }
        let tokens = TokenHeuristic.tokens(of: command.plan.sharedParts + call.parts)
            .addingSaturating(TokenHeuristic.tokens(of: call.config.systemInstruction ?? ""))
        return (tokens, "estimated at 4 bytes of text a token")
    }

    private static func isFile(_ part: APIPart) -> Bool {
        switch part {
        case .fileRef, .filePlaceholder, .inline: true
        case .text, .history, .toolResult: false
        }
    }

    private static func describe(_ part: APIPart) -> String {
        switch part {
        case .fileRef(let ref): "\(ref.mimeType) file \(ref.uri)"
        case .filePlaceholder(let p): "\(p.effectiveMimeType) file \(p.path)"
        case .inline(let data): "inline \(data.mimeType)"
        case .text, .history, .toolResult: part.typeName
        }
    }
}

/// A quick token estimate without a tokenizer: a text counts one token per 4 UTF-8 bytes
/// (rounded up), as the mock provider counts; a file or inline part counts 258 (one image tile).
package enum TokenHeuristic {
    public static let tokensPerFile = 258

    public static func tokens(of text: String) -> Int { (text.utf8.count + 3) / 4 }

    public static func tokens(of parts: [APIPart]) -> Int {
        parts.reduce(0) { total, part in
            let tokens: Int
            switch part {
            case .text(let text): tokens = Self.tokens(of: text)
            case .history(let history): tokens = history.reduce(0) { $0.addingSaturating(Self.tokens(of: $1.question) + Self.tokens(of: $1.answer)) }
            case .toolResult(let result): tokens = Self.tokens(of: result.contentText)
            case .fileRef, .filePlaceholder, .inline: tokens = tokensPerFile
            }
            return total.addingSaturating(tokens)
        }
    }
}
