import CommandPipeline

/// Every place batch reaches into the engine and the result format: decoding and validating a
/// command as `run` does, building its requests as the generate stage does, and writing its
/// result line with `ResultWriter` — as a value, to which the batch keys are added. (Kept in
/// one file so a change of the engine's internals touches batch here only.)
enum BatchRecords {
    /// A command that cannot run, with what its failed record needs.
    struct Rejected: Error {
        var error: APIError
        var id: String
        var metadata: JSONObject
    }

    /// A command as `run` reads it: the decoder's errors, then the engine's validation.
    static func decode(_ piece: JSONStreamSplitter.Piece, index: Int) -> Result<PlannedCommand, Rejected> {
        switch piece.parse() {
        case .failure(let error):
            return .failure(Rejected(error: APIError(.invalidCommand, error.message, path: error.path), id: "cmd-\(index + 1)", metadata: [:]))
        case .success(let value):
            return decode(value, index: index)
        }
    }

    static func decode(_ value: JSONValue, index: Int) -> Result<PlannedCommand, Rejected> {
        switch WireFormat.command(from: value, position: index + 1) {
        case .failure(let rejection):
            return .failure(Rejected(error: rejection.error, id: rejection.id, metadata: rejection.metadata))
        case .success(let command):
            let issues = command.validationIssues()
            if let first = issues.first {
                let message = issues.count == 1 ? first.message : issues.map { "\($0.path): \($0.message)" }.joined(separator: "; ")
                return .failure(Rejected(error: APIError(.invalidCommand, message, path: first.path), id: command.id, metadata: command.metadata))
            }
            return .success(command)
        }
    }

    /// The requests of `command`'s calls, exactly as `run` sends them when no cache is in play
    /// (`ExecutionState.request(call:)`), or why a batch cannot carry the command (see
    /// Design/batch.md, "What cannot be batched").
    static func requests(for command: PlannedCommand) -> Result<[GenerationRequest], APIError> {
        let plan = command.plan
        if plan.fallbackCall != nil {
            return .failure(APIError(
                .capabilityMissing,
                "a batch cannot run a fallback call: it would have to wait for the primary call's result; remove plan.fallback_call (or fallback_model) or run this command with 'pipeline run'",
                path: "plan.fallback_call"))
        }
        for (path, parts) in [("plan.shared_parts", plan.sharedParts)] + plan.calls.enumerated().map({ ("plan.calls[\($0.offset)].parts", $0.element.parts) }) {
            for (i, part) in parts.enumerated() {
                if case .filePlaceholder(let file) = part {
                    return .failure(APIError(
                        .capabilityMissing,
                        "a batch request cannot reference a local file ('\(file.path)'): batch requests are built before any upload; upload it first and give a file_ref, send it inline, or run this command with 'pipeline run'",
                        path: "\(path)[\(i)]"))
                }
            }
        }
        let state = ExecutionState(command: command)
        return .success(state.calls.indices.map { state.request(call: $0) })
    }

    /// The result line (with newline) of a command that was not submitted: rejected as `run`
    /// rejects it, or refused by the batch rules.
    static func rejectedLine(_ error: APIError, id: String, index: Int, metadata: JSONObject, provider: String, inputHash: String) -> [UInt8] {
        var line: [UInt8] = []
        ResultWriter.failed(error, id: id, index: index, metadata: metadata, telemetry: Telemetry(provider: provider), to: &line)
        return finish(line, job: nil, inputHash: inputHash)
    }

    /// The result line (with newline) of a batched command from the results of its calls, in
    /// call order. With a `catalog`, the responses are priced at its batch prices (`cost`).
    /// Parsed values and violation messages are redacted with `redactor` (`OutputFormat.check`).
    static func line(
        command: PlannedCommand, index: Int, inputHash: String, provider: String, job: String, outcomes: [Result<GenerationResponse, APIError>],
        catalog: ModelCatalog? = nil, redactor: SecretRedactor = .none
    ) -> (line: [UInt8], succeeded: Bool, tokens: Int, cost: Cost?) {
        var telemetry = Telemetry(provider: provider, calls: outcomes.indices.map { CallTelemetry(callIndex: $0) })
        if let plan = command.plan.cache, let first = command.plan.calls.first {
            let key = plan.key ?? CacheKey.derive(model: first.model, systemInstruction: first.config.systemInstruction, parts: command.plan.sharedParts)
            telemetry.cache = CacheTelemetry(
                id: nil, key: key, created: false, reused: false,
                uncachedReason: "batch requests cannot use a cache created first: the shared context was sent in full with each request")
        }
        var responses: [CallResponse] = []
        var failures: [(Int, APIError)] = []
        let calls = command.plan.calls
        for (i, outcome) in outcomes.enumerated() {
            switch outcome {
            case .success(var response):
                // A JSON response_format and the tools are checked as `run` checks them
                // (`RepairUnit.check`); a batch cannot re-ask, so an answer that breaks them fails
                // at once (its usage billed as a failed attempt).
                if i < calls.count, calls[i].config.responseFormat != nil || calls[i].config.tools != nil {
                    let config = calls[i].config
                    let format = (try? OutputFormat.of(config.responseFormat, path: "plan.calls[\(i)].config.response_format")) ?? nil
                    let tools = config.tools.flatMap { try? ToolSet($0, choice: config.toolChoice, path: "plan.calls[\(i)].config.tools") }
                    if let rejection = RepairUnit.check(&response, format: format, tools: tools, redactor: redactor) {
                        let violation = rejection.violation
                        let what = rejection.toolCall.map { "tool call \($0) does not conform to its tool's parameters" } ?? "does not conform to its response_format"
                        failures.append((i, APIError(
                            .invalidOutput,
                            "the answer of call \(i) (\(response.model)) \(what) at \(violation.path): \(violation.message) (a batch answer cannot be repaired)",
                            path: violation.path, provider: provider)))
                        telemetry.billedAttempts.append(BilledAttempt(callIndex: i, attempt: 1, model: response.model, usage: response.usage))
                        continue
                    }
                }
                responses.append(CallResponse(callIndex: i, response: response))
            case .failure(let error): failures.append((i, error))
            }
        }
        let usage = responses.reduce(Usage.zero) { $0 + $1.usage }
        if let estimate = command.tokenEstimate, usage.isReported { telemetry.tokenValidation = TokenValidation(estimate: estimate, actual: usage.totalTokens) }
        let state = ExecutionState(command: command)
        var outcome: CommandOutcome
        if let (firstIndex, firstError) = failures.first {
            var error = firstError
            if outcomes.count > 1 { error.message = "\(failures.count) of \(outcomes.count) calls failed; first, call \(firstIndex): \(firstError.message)" }
            outcome = CommandOutcome(
                result: .failure(error), state: state, telemetry: telemetry, partialResponses: responses,
                failedCalls: failures.map(\.0))
        } else {
            let finalized = FinalizedCommand(id: command.id, responses: responses, usage: usage, telemetry: telemetry, metadata: command.metadata)
            outcome = CommandOutcome(finalized, state: state)
        }
        if let catalog { outcome = CostUnit.priced(outcome, catalog: catalog, batch: true) }
        var line: [UInt8] = []
        line.reserveCapacity(768)
        ResultWriter.record(outcome, index: index, to: &line)
        return (finish(line, job: job, inputHash: inputHash), failures.isEmpty, usage.totalTokens, outcome.telemetry.cost)
    }

    /// The record with the batch keys, from its value: `"batch":true,"batch_job":…` first in
    /// the telemetry, `input_hash` last (as `run` writes it), then the newline.
    private static func finish(_ record: [UInt8], job: String?, inputHash: String) -> [UInt8] {
        guard case .object(var object)? = try? JSONParser.parse(record) else { return record + [0x0a] }
        if let job, case .object(let telemetry)? = object["telemetry"] {
            object["telemetry"] = .object(JSONObject([(key: "batch", value: .bool(true)), (key: "batch_job", value: .string(job))] + telemetry.members))
        }
        object["input_hash"] = .string(inputHash)
        var line: [UInt8] = []
        line.reserveCapacity(record.count + 64)
        JSONSerializer.write(.object(object), to: &line)
        line.append(0x0a)
        return line
    }
}
