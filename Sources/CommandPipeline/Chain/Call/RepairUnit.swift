/// Checks each answer of a call whose `config.response_format` asks for JSON (`OutputFormat`)
/// or that offers tools (`config.tools`, `ToolSet`), and re-asks the ones that break it: the
/// previous answer goes back as an assistant turn and a short correction says what was wrong
/// (a user turn for the format; a tool result for each of the answer's tool calls, the wrong
/// one saying why), up to `config.max_repairs` times (else the engine's `maxRepairs`). A
/// conforming answer carries its value in `GenerationResponse.parsed` and its tool calls'
/// checked arguments. An answer with tool calls is checked against the tools only: it is not
/// the final answer the format describes.
///
/// Each rejected answer is recorded as an `attempt_failed` of kind `invalid_output` (with the
/// usage it was billed, so `CostUnit` prices it as a `failed_attempt`; when a repair follows,
/// `will_retry` is true and the fold counts a repair). After the last repair the call fails with
/// `invalid_output` (not retryable), `path` the JSON path of the first violation in the answer
/// (`$.tool_calls[0].arguments.city` for a tool call's).
/// The outermost call unit: every repair is a whole call again (cache bypass, retries, rate
/// limits, timeout).
package struct RepairUnit: ChainUnit {
    /// Repairs per call when the call does not say (`config.max_repairs`).
    public let maxRepairs: Int

    /// Redacts the parsed value and the violation messages (`OutputFormat.check`): parsing decodes
    /// escapes the provider's redaction of the raw text could not see.
    public let redactor: SecretRedactor

    public init(maxRepairs: Int = 1, redactor: SecretRedactor = .none) {
        self.maxRepairs = Swift.min(Swift.max(0, maxRepairs), Limits.maxRepairs.upperBound)
        self.redactor = redactor
    }

    /// Tested on the optionals' tags: comparing with nil copied the format for every call.
    public func applies(to input: CallInput) -> Bool {
        input.request.config.responseFormat.isPresent || input.request.config.tools.isPresent
    }

    /// What was wrong with an answer: the violation, with its path in the answer, and the tool
    /// call it is in (nil: the answer's text).
    package struct Rejection: Sendable, Hashable {
        public var violation: JSONSchema.Violation
        public var toolCall: Int?
    }

    public func handle(_ input: CallInput, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        let format: OutputFormat?
        let tools: ToolSet?
        do {
            let config = input.request.config
            format = try OutputFormat.of(config.responseFormat, path: "\(input.path).config.response_format")
            tools = try config.tools.map { tools throws(APIError) in try ToolSet(tools, choice: config.toolChoice, path: "\(input.path).config.tools") }
        } catch {
            return .failure(error)
        }
        guard format != nil || tools != nil else { return await next(input) }
        let limit = Swift.min(Swift.max(0, input.request.config.maxRepairs ?? maxRepairs), Limits.maxRepairs.upperBound)
        var current = input
        var repairs = 0
        while true {
            let result = await next(current)
            guard case .success(var response) = result else { return result }
            guard let rejection = Self.check(&response, format: format, tools: tools, redactor: redactor) else { return .success(response) }
            let violation = rejection.violation
            let again = repairs < limit && !Task.isCancelled
            let what = rejection.toolCall.map { "tool call \($0) (\(Self.shown(response.toolCalls[$0].name))) does not conform to its tool's parameters" }
                ?? "does not conform to its response_format"
            let error = APIError(
                .invalidOutput,
                "the answer of call \(input.callIndex) (\(response.model)) \(what) at \(violation.path): \(violation.message)"
                    + (again || repairs == 0 ? "" : " (after \(repairs) repair\(repairs == 1 ? "" : "s"))"),
                path: violation.path, provider: input.provider.providerName
            ).billed(response.usage)
            input.log.record(.attemptFailed(call: input.callIndex, attempt: input.log.attempts(call: input.callIndex), error: error, willRetry: again))
            guard again else { return .failure(error) }
            repairs += 1
            // The repair's attempts are numbered after the call's attempts so far.
            current = current.repaired(
                request: Self.repaired(current.request, answer: response, rejection: rejection),
                uncached: current.uncached.map { Self.repaired($0, answer: response, rejection: rejection) },
                after: input.log.attempts(call: input.callIndex))
        }
    }

    /// Checks `response` in place: its tool calls against `tools` (their arguments replaced by the
    /// checked, redacted values), else its text against `format` (`parsed` set). The first
    /// problem, or nil when the answer conforms.
    public static func check(_ response: inout GenerationResponse, format: OutputFormat?, tools: ToolSet?, redactor: SecretRedactor) -> Rejection? {
        if !response.toolCalls.isEmpty {
            guard let tools else { return nil }  // tools offered through provider_options: not the engine's to check
            for i in response.toolCalls.indices {
                switch tools.check(response.toolCalls[i], redactor: redactor) {
                case .success(let value): response.toolCalls[i].arguments = value
                case .failure(let v):
                    return Rejection(violation: JSONSchema.Violation(path: "$.tool_calls[\(i)].arguments" + v.path.dropFirst(), message: v.message), toolCall: i)
                }
            }
            return nil
        }
        guard let format else { return nil }
        switch format.check(response.text, redactor: redactor) {
        case .success(let value):
            response.parsed = value
            return nil
        case .failure(let violation):
            return Rejection(violation: violation, toolCall: nil)
        }
    }

    /// `request` continued after a rejected answer: the answer as an assistant turn (with its
    /// tool calls), then the correction — a user turn, or for a rejected tool call one tool
    /// result per call of the answer (the providers want every call answered), the rejected one
    /// saying what was wrong.
    public static func repaired(_ request: GenerationRequest, answer: GenerationResponse, rejection: Rejection) -> GenerationRequest {
        var request = request
        request.parts.append(.history([HistoryTurn(question: "", answer: answer.text, toolCalls: answer.toolCalls)]))
        guard let bad = rejection.toolCall else {
            request.parts.append(.text(correction(rejection.violation)))
            return request
        }
        let name = answer.toolCalls[bad].name
        for (i, call) in answer.toolCalls.enumerated() {
            let content = i == bad
                ? toolCorrection(rejection.violation, tool: name)
                : "Not run: the arguments of another tool call ('\(shown(name))') were rejected. Make the tool calls again, with corrected arguments."
            request.parts.append(.toolResult(ToolResult(id: call.id, name: call.name, content: .string(content), isError: true)))
        }
        return request
    }

    /// `request` continued after a rejected text answer (the rejected answer, then a user correction).
    public static func repaired(_ request: GenerationRequest, answer: String, violation: JSONSchema.Violation) -> GenerationRequest {
        repaired(request, answer: GenerationResponse(text: answer, model: "", usage: .zero), rejection: Rejection(violation: violation, toolCall: nil))
    }

    /// The user turn after a rejected answer.
    public static func correction(_ violation: JSONSchema.Violation) -> String {
        "Your answer does not conform to the required JSON format: at \(violation.path), \(violation.message). "
            + "Answer again with only the corrected JSON, no other text."
    }

    /// The tool result of a rejected tool call.
    public static func toolCorrection(_ violation: JSONSchema.Violation, tool: String) -> String {
        "Not run: your call of the tool '\(shown(tool))' does not conform to its parameters: at \(violation.path), \(violation.message). "
            + "Call the tool again with corrected arguments."
    }

    /// A model-given name as quoted in messages: at most 80 characters.
    static func shown(_ name: String) -> String { name.count > 80 ? String(name.prefix(80)) + "…" : name }
}
