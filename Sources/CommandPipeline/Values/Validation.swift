import Synchronization

/// One thing wrong with a command: where (a wire path such as `plan.calls[1].parts[0]`) and what.
package struct ValidationIssue: Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }
}

extension PlannedCommand {
    /// Every invariant the command breaks, each with the field's wire path. Empty when valid.
    package func validationIssues() -> [ValidationIssue] {
        #if DEBUG
        ValidationProbe.counter?.count.add(1, ordering: .relaxed)
        #endif
        // An inout list, not a nested function appending to a captured array: the capture made
        // every command pay a runtime exclusivity check.
        var issues = Issues()

        if id.isEmpty { issues.add("id", "id must not be empty; give the command an id that names it in results (in the CLI's input, a command without \"id\" is named cmd-N)") }
        if plan.calls.isEmpty { issues.add("plan.calls", "plan.calls must contain at least one call") }
        // Calls and parts are checked where they are, by array and index: passed as values, each
        // call and part was copied (this runs for every command).
        let calls = plan.calls, sharedParts = plan.sharedParts
        for i in calls.indices {
            check(calls, i, at: "plan.calls[\(i)]", hasShared: !sharedParts.isEmpty, &issues)
        }
        // Optional fields are tested on their tag first: binding one copies it, present or not.
        if plan.fallbackCall.isPresent, let fallback = plan.fallbackCall {
            check([fallback], 0, at: "plan.fallback_call", hasShared: !sharedParts.isEmpty, &issues)
        }
        for i in sharedParts.indices { check(sharedParts, i, at: "plan.shared_parts[\(i)]", &issues) }
        for (i, task) in plan.uploadTasks.enumerated() {
            let path = "plan.upload_tasks[\(i)]"
            let parts: [APIPart]?
            switch task.callIndex {
            case nil: parts = plan.sharedParts
            case let c?:
                if plan.calls.indices.contains(c) {
                    parts = plan.calls[c].parts
                } else {
                    parts = nil
                    issues.add(path + ".call_index", "call_index \(c) is out of range: the plan has \(plan.calls.count) call(s)")
                }
            }
            if let parts {
                if !parts.indices.contains(task.partIndex) {
                    issues.add(path + ".part_index", "part_index \(task.partIndex) is out of range: there are \(parts.count) part(s)")
                } else if parts[task.partIndex].placeholder == nil {
                    issues.add(path + ".part_index", "part_index \(task.partIndex) points at a \(parts[task.partIndex].typeName) part; upload tasks must point at file_placeholder parts")
                }
            }
        }
        if plan.cache.isPresent, let cache = plan.cache {
            checkRange(cache.ttlSeconds, Limits.cacheTTLSeconds, "plan.cache.ttl_seconds", &issues)
            if let key = cache.key, key.isEmpty { issues.add("plan.cache.key", "key must not be empty; omit it to derive one") }
        }
        if plan.rateConstraint.isPresent, let rate = plan.rateConstraint {
            if let rpm = rate.requestsPerMinute { checkRange(rpm, Limits.requestsPerMinute, "plan.rate_constraint.requests_per_minute", &issues) }
            if let tpm = rate.tokensPerMinute { checkRange(tpm, Limits.tokensPerMinute, "plan.rate_constraint.tokens_per_minute", &issues) }
        }
        if tokenEstimate.isPresent, let estimate = tokenEstimate { check(estimate, at: "token_estimate", &issues) }
        if !perCallEstimates.isEmpty && perCallEstimates.count != plan.calls.count {
            issues.add("per_call_estimates", "per_call_estimates has \(perCallEstimates.count) entries but the plan has \(plan.calls.count) call(s); give one per call or none")
        }
        for (i, estimate) in perCallEstimates.enumerated() { check(estimate, at: "per_call_estimates[\(i)]", &issues) }
        return issues.list
    }

    private func check(_ calls: [APICall], _ c: Int, at path: @autoclosure () -> String, hasShared: Bool, _ issues: inout Issues) {
        if calls[c].model.isEmpty { issues.add(path() + ".model", "model must not be empty") }
        let parts = calls[c].parts
        if parts.isEmpty && !hasShared {
            issues.add(path() + ".parts", "a call needs at least one part (or plan.shared_parts)")
        }
        for i in parts.indices { check(parts, i, at: "\(path()).parts[\(i)]", &issues) }
        if let t = calls[c].config.temperature, !(0...2).contains(t) { issues.add(path() + ".config" + ".temperature", "temperature must be between 0 and 2, got \(t)") }
        if let p = calls[c].config.topP, !(0...1).contains(p) { issues.add(path() + ".config" + ".top_p", "top_p must be between 0 and 1, got \(p)") }
        if let m = calls[c].config.maxTokens { checkRange(m, Limits.maxTokens, path() + ".config.max_tokens", &issues) }
        if let stop = calls[c].config.stop, stop.contains(where: \.isEmpty) { issues.add(path() + ".config" + ".stop", "stop sequences must not be empty strings") }
        if let r = calls[c].config.maxRepairs { checkRange(r, Limits.maxRepairs, path() + ".config.max_repairs", &issues) }
        if calls[c].config.responseFormat.isPresent {
            do {
                _ = try OutputFormat.of(calls[c].config.responseFormat, path: path() + ".config.response_format")
            } catch {
                issues.add(error.path ?? path() + ".config.response_format", error.message)
            }
        }
        if calls[c].config.tools.isPresent || calls[c].config.toolChoice.isPresent {
            do {
                _ = try ToolSet(calls[c].config.tools ?? [], choice: calls[c].config.toolChoice, path: path() + ".config.tools")
            } catch {
                issues.add(error.path ?? path() + ".config.tools", error.message)
            }
        }
    }

    private func check(_ parts: [APIPart], _ i: Int, at path: @autoclosure () -> String, _ issues: inout Issues) {
        if case .text = parts[i] { return }   // nothing to check, and the common case
        switch parts[i] {
        case .text: break
        case .fileRef(let ref):
            if ref.uri.isEmpty { issues.add(path() + ".uri", "uri must not be empty") }
            if ref.mimeType.isEmpty { issues.add(path() + ".mime_type", "mime_type must not be empty") }
        case .filePlaceholder(let p):
            if p.path.isEmpty { issues.add(path() + ".path", "path must not be empty") }
        case .inline(let inline):
            if inline.mimeType.isEmpty { issues.add(path() + ".mime_type", "mime_type must not be empty") }
        case .history(let history):
            if history.isEmpty { issues.add(path() + ".turns", "history needs at least one turn") }
            for (t, turn) in history.enumerated() {
                for (k, call) in turn.toolCalls.enumerated() {
                    let at = "\(path()).turns[\(t)].tool_calls[\(k)]"
                    if call.id.isEmpty { issues.add(at + ".id", "a tool call's id must not be empty: give the id the provider gave it") }
                    if call.name.isEmpty { issues.add(at + ".name", "a tool call's name must not be empty") }
                }
            }
        case .toolResult(let result):
            if result.id.isEmpty { issues.add(path() + ".id", "id must name the tool call this result answers (its id)") }
            if result.name.isEmpty { issues.add(path() + ".name", "name must be the name of the tool that was called") }
        }
    }

    private func check(_ estimate: TokenEstimate, at path: @autoclosure () -> String, _ issues: inout Issues) {
        checkRange(estimate.minTokens, Limits.tokenCount, path() + ".min_tokens", &issues)
        checkRange(estimate.expectedTokens, Limits.tokenCount, path() + ".expected_tokens", &issues)
        checkRange(estimate.maxTokens, Limits.tokenCount, path() + ".max_tokens", &issues)
        if estimate.minTokens > estimate.expectedTokens || estimate.expectedTokens > estimate.maxTokens {
            issues.add(path(), "estimates must satisfy min_tokens ≤ expected_tokens ≤ max_tokens, got \(estimate.minTokens) ≤ \(estimate.expectedTokens) ≤ \(estimate.maxTokens)")
        }
        if let c = estimate.confidence, !(0...1).contains(c) { issues.add(path() + ".confidence", "confidence must be between 0 and 1, got \(c)") }
    }

    /// One issue when `value` is outside `range`, naming the field's last key.
    private func checkRange(_ value: Int, _ range: ClosedRange<Int>, _ path: @autoclosure () -> String, _ issues: inout Issues) {
        guard !range.contains(value) else { return }
        let path = path()
        let key = path.split(separator: ".").last.map(String.init) ?? path
        issues.add(path, "\(key) must be \(range.spelled), got \(value)")
    }
}

/// The issues found so far, in the order found.
private struct Issues {
    var list: [ValidationIssue] = []

    mutating func add(_ path: String, _ message: String) { list.append(ValidationIssue(path: path, message: message)) }
}

#if DEBUG
/// For tests (debug builds only): counts the validations (`validationIssues()`) made in a task
/// that binds `counter`, so a test can see a command validated once, not twice.
package final class ValidationProbe: Sendable {
    @TaskLocal package static var counter: ValidationProbe?
    package let count = Atomic<Int>(0)
    package init() {}
}
#endif
