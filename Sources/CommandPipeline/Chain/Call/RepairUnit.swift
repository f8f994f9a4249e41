/// Checks each answer of a call whose `config.response_format` asks for JSON (`OutputFormat`)
/// and re-asks the ones that break it: the previous answer goes back as an assistant turn and a
/// short user correction says what was wrong, up to `config.max_repairs` times (else the
/// engine's `maxRepairs`). A conforming answer carries its value in `GenerationResponse.parsed`.
///
/// Each rejected answer is recorded as an `attempt_failed` of kind `invalid_output` (with the
/// usage it was billed, so `CostUnit` prices it as a `failed_attempt`; when a repair follows,
/// `will_retry` is true and the fold counts a repair). After the last repair the call fails with
/// `invalid_output` (not retryable), `path` the JSON path of the first violation in the answer.
/// The outermost call unit: every repair is a whole call again (cache bypass, retries, rate
/// limits, timeout).
public struct RepairUnit: ChainUnit {
    /// Repairs per call when the call does not say (`config.max_repairs`).
    public let maxRepairs: Int

    /// Redacts the parsed value and the violation messages (`OutputFormat.check`): parsing decodes
    /// escapes the provider's redaction of the raw text could not see.
    public let redactor: SecretRedactor

    public init(maxRepairs: Int = 1, redactor: SecretRedactor = .none) {
        self.maxRepairs = Swift.min(Swift.max(0, maxRepairs), Limits.maxRepairs.upperBound)
        self.redactor = redactor
    }

    /// Tested on the optional's tag: comparing with nil copied the format for every call.
    public func applies(to input: CallInput) -> Bool { input.request.config.responseFormat.isPresent }

    public func handle(_ input: CallInput, next: Next<CallInput, Result<GenerationResponse, APIError>>) async -> Result<GenerationResponse, APIError> {
        let format: OutputFormat
        do {
            guard let found = try OutputFormat.of(input.request.config.responseFormat, path: "\(input.path).config.response_format") else { return await next(input) }
            format = found
        } catch {
            return .failure(error)
        }
        let limit = Swift.min(Swift.max(0, input.request.config.maxRepairs ?? maxRepairs), Limits.maxRepairs.upperBound)
        var current = input
        var repairs = 0
        while true {
            let result = await next(current)
            guard case .success(var response) = result else { return result }
            switch format.check(response.text, redactor: redactor) {
            case .success(let value):
                response.parsed = value
                return .success(response)
            case .failure(let violation):
                let again = repairs < limit && !Task.isCancelled
                let error = APIError(
                    .invalidOutput,
                    "the answer of call \(input.callIndex) (\(response.model)) does not conform to its response_format at \(violation.path): \(violation.message)"
                        + (again || repairs == 0 ? "" : " (after \(repairs) repair\(repairs == 1 ? "" : "s"))"),
                    path: violation.path, provider: input.provider.providerName
                ).billed(response.usage)
                input.log.record(.attemptFailed(call: input.callIndex, attempt: input.log.attempts(call: input.callIndex), error: error.summary, willRetry: again))
                guard again else { return .failure(error) }
                repairs += 1
                // The repair's attempts are numbered after the call's attempts so far.
                current = current.repaired(
                    request: Self.repaired(current.request, answer: response.text, violation: violation),
                    uncached: current.uncached.map { Self.repaired($0, answer: response.text, violation: violation) },
                    after: input.log.attempts(call: input.callIndex))
            }
        }
    }

    /// `request` continued: the rejected answer as an assistant turn, then a user correction.
    public static func repaired(_ request: GenerationRequest, answer: String, violation: JSONSchema.Violation) -> GenerationRequest {
        var request = request
        request.parts.append(.history(History(turns: [History.Turn(question: "", answer: answer)])))
        request.parts.append(.text(correction(violation)))
        return request
    }

    /// The user turn after a rejected answer.
    public static func correction(_ violation: JSONSchema.Violation) -> String {
        "Your answer does not conform to the required JSON format: at \(violation.path), \(violation.message). "
            + "Answer again with only the corrected JSON, no other text."
    }
}
