/// Writes result records (and their parts) straight to JSON bytes, through the primitives of
/// `JSONSerializer`, the one JSON writer (request bodies and commands are `JSONValue` trees it
/// writes; results and events are laid out here and in `EventWriter`). This is the one
/// definition of the output format; it is only ever written, never rebuilt as a tree.
/// (Building `JSONValue` trees first cost more than everything else in the CLI together.)
package enum ResultWriter {
    /// Appends one succeeded result record (no newline). With `inputHash` (the CLI's `run`),
    /// the record ends in `"input_hash"`, the digest of the command's input (`inputHash(_:to:)`).
    public static func succeeded(_ command: FinalizedCommand, index: Int, inputHash: UInt64? = nil, to out: inout [UInt8]) {
        JSONSerializer.raw(#"{"id":"#, to: &out)
        JSONSerializer.writeString(command.id, to: &out)
        JSONSerializer.raw(#","index":"#, to: &out)
        JSONSerializer.writeInt(index, to: &out)
        JSONSerializer.raw(#","status":"succeeded","responses":"#, to: &out)
        responses(command.responses, to: &out)
        JSONSerializer.raw(#","usage":"#, to: &out)
        usage(command.usage, to: &out)
        JSONSerializer.raw(#","telemetry":"#, to: &out)
        telemetry(command.telemetry, to: &out)
        JSONSerializer.raw(#","metadata":"#, to: &out)
        JSONSerializer.write(.object(command.metadata), to: &out)
        if let inputHash { self.inputHash(inputHash, to: &out) }
        out.append(UInt8(ascii: "}"))
    }

    /// Appends one failed result record (no newline). Responses of calls that succeeded
    /// before the failure are kept, with their usage. `inputHash` as in `succeeded`.
    public static func failed(
        _ error: APIError, id: String, index: Int, metadata: JSONObject, telemetry: Telemetry, partialResponses: [CallResponse] = [],
        failedCalls: [Int] = [], inputHash: UInt64? = nil, to out: inout [UInt8]
    ) {
        JSONSerializer.raw(#"{"id":"#, to: &out)
        JSONSerializer.writeString(id, to: &out)
        JSONSerializer.raw(#","index":"#, to: &out)
        JSONSerializer.writeInt(index, to: &out)
        JSONSerializer.raw(#","status":"failed","error":"#, to: &out)
        self.error(error, failedCalls: failedCalls, primaryError: telemetry.primaryError, to: &out)
        JSONSerializer.raw(#","telemetry":"#, to: &out)
        self.telemetry(telemetry, to: &out)
        if !partialResponses.isEmpty {
            JSONSerializer.raw(#","responses":"#, to: &out)
            responses(partialResponses, to: &out)
            JSONSerializer.raw(#","usage":"#, to: &out)
            usage(partialResponses.reduce(Usage.zero) { $0 + $1.usage }, to: &out)
        }
        JSONSerializer.raw(#","metadata":"#, to: &out)
        JSONSerializer.write(.object(metadata), to: &out)
        if let inputHash { self.inputHash(inputHash, to: &out) }
        out.append(UInt8(ascii: "}"))
    }

    /// Appends the record of a command's outcome (no newline). `inputHash` as in `succeeded`.
    public static func record(_ outcome: CommandOutcome, index: Int, inputHash: UInt64? = nil, to out: inout [UInt8]) {
        switch outcome.result {
        case .success(let finalized): succeeded(finalized, index: index, inputHash: inputHash, to: &out)
        case .failure(let error):
            let command = outcome.command
            failed(
                error, id: command.id, index: index, metadata: command.metadata, telemetry: outcome.telemetry,
                partialResponses: outcome.partialResponses, failedCalls: outcome.failedCalls, inputHash: inputHash, to: &out)
        }
    }

    /// A record's last key, `"input_hash"`: the digest of the command's exact input bytes
    /// (`InputDigest`, FNV-1a 64) as 16 hex digits, leading zeros kept. `run --resume` matches
    /// on it (WIRE-FORMAT.md, "Result").
    package static func inputHash(_ digest: UInt64, to out: inout [UInt8]) {
        JSONSerializer.raw(#","input_hash":""#, to: &out)
        hexDigits(digest, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// `value` as 16 lowercase hex digits, leading zeros kept (written without making a string).
    package static func hexDigits(_ value: UInt64, to out: inout [UInt8]) {
        for shift in stride(from: 60, through: 0, by: -4) {
            let nibble = UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0xf
            out.append(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
        }
    }

    package static func responses(_ responses: [CallResponse], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (i, r) in responses.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            response(r, to: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    package static func response(_ r: CallResponse, to out: inout [UInt8]) {
        JSONSerializer.raw(#"{"call_index":"#, to: &out)
        JSONSerializer.writeInt(r.callIndex, to: &out)
        JSONSerializer.raw(#","text":"#, to: &out)
        JSONSerializer.writeString(r.text, to: &out)
        if let parsed = r.parsed {
            // Only under a JSON response_format, for an answer that conforms.
            JSONSerializer.raw(#","parsed":"#, to: &out)
            JSONSerializer.write(parsed, to: &out)
        }
        if !r.toolCalls.isEmpty {
            // Only when the model called tools: [{"id","name","arguments"}], arguments checked.
            JSONSerializer.raw(#","tool_calls":"#, to: &out)
            JSONSerializer.write(.array(r.toolCalls.map(\.wireValue)), to: &out)
        }
        JSONSerializer.raw(#","model":"#, to: &out)
        JSONSerializer.writeString(r.model, to: &out)
        if let deployment = r.deployment {
            // Only with a router (`--deployments`): who answered, on which provider.
            JSONSerializer.raw(#","deployment":"#, to: &out)
            JSONSerializer.writeString(deployment, to: &out)
            JSONSerializer.raw(#","provider":"#, to: &out)
            JSONSerializer.writeString(r.provider ?? "", to: &out)
        }
        JSONSerializer.raw(#","finish_reason":"#, to: &out)
        JSONSerializer.writeString(r.finishReason, to: &out)
        JSONSerializer.raw(#","usage":"#, to: &out)
        usage(r.usage, to: &out)
        if let c = r.cost {
            // Only with a model catalog that prices the model; left out otherwise.
            JSONSerializer.raw(#","cost":"#, to: &out)
            cost(c, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    package static func usage(_ u: Usage, to out: inout [UInt8]) {
        guard u.isReported else {
            // A call whose provider did not report usage: the counts are unknown, not zero (a sum
            // over calls with one such call is unknown too); how many calls did not say.
            JSONSerializer.raw(#"{"prompt_tokens":null,"completion_tokens":null,"total_tokens":null,"cached_tokens":null,"unreported_calls":"#, to: &out)
            JSONSerializer.writeInt(u.unreportedCalls, to: &out)
            out.append(UInt8(ascii: "}"))
            return
        }
        JSONSerializer.raw(#"{"prompt_tokens":"#, to: &out)
        JSONSerializer.writeInt(u.promptTokens, to: &out)
        JSONSerializer.raw(#","completion_tokens":"#, to: &out)
        JSONSerializer.writeInt(u.completionTokens, to: &out)
        JSONSerializer.raw(#","total_tokens":"#, to: &out)
        JSONSerializer.writeInt(u.totalTokens, to: &out)
        JSONSerializer.raw(#","cached_tokens":"#, to: &out)
        JSONSerializer.writeInt(u.cachedTokens, to: &out)
        if u.cacheCreationTokens > 0 {
            // Only providers that report cache writes (Anthropic) have it; the key is left out otherwise.
            JSONSerializer.raw(#","cache_creation_tokens":"#, to: &out)
            JSONSerializer.writeInt(u.cacheCreationTokens, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    package static func optionalString(_ s: String?, to out: inout [UInt8]) {
        if let s { JSONSerializer.writeString(s, to: &out) } else { JSONSerializer.raw("null", to: &out) }
    }

    package static func bool(_ b: Bool, to out: inout [UInt8]) {
        if b { JSONSerializer.raw("true", to: &out) } else { JSONSerializer.raw("false", to: &out) }
    }

    /// Milliseconds with three decimals.
    /// `d` in milliseconds with at most three decimals, exactly as `Double.description` writes
    /// the rounded value ("0.0", "1.5", "1.883"). Six of these go into every result: below
    /// 10^12 ms they are written from the integer count of microseconds, without formatting a
    /// `Double` (each formatting made a string); anything else falls back to the `Double`.
    package static func milliseconds(_ d: Duration, to out: inout [UInt8]) {
        let rounded = (d.milliseconds * 1000).rounded()
        guard rounded >= 0, rounded.sign == .plus, rounded < 1e15 else {
            JSONSerializer.writeDouble(rounded / 1000, to: &out)
            return
        }
        let micros = Int(rounded)
        JSONSerializer.writeInt(micros / 1000, to: &out)
        out.append(UInt8(ascii: "."))
        var fraction = micros % 1000
        guard fraction != 0 else {
            out.append(UInt8(ascii: "0"))
            return
        }
        var digits = 3
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        // Leading zeros of the fraction ("1.005"), then its significant digits.
        var divisor = 1
        for _ in 1..<digits { divisor *= 10 }
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(fraction / divisor % 10))
            divisor /= 10
        }
    }

    /// An event's error as its flat part (`ErrorSummary`).
    package static func summary(_ e: APIError, to out: inout [UInt8]) { summary(e.summary, to: &out) }

    package static func summary(_ s: ErrorSummary, to out: inout [UInt8]) {
        JSONSerializer.raw(#"{"kind":""#, to: &out)
        out.append(contentsOf: s.kind.rawValue.utf8)
        JSONSerializer.raw(#"","message":"#, to: &out)
        JSONSerializer.writeString(s.message, to: &out)
        JSONSerializer.raw(#","provider":"#, to: &out)
        optionalString(s.provider, to: &out)
        JSONSerializer.raw(#","retryable":"#, to: &out)
        bool(s.retryable, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    package static func tokenValidation(_ v: TokenValidation, to out: inout [UInt8]) {
        JSONSerializer.raw(#"{"estimated":{"min":"#, to: &out)
        JSONSerializer.writeInt(v.estimated.minTokens, to: &out)
        JSONSerializer.raw(#","expected":"#, to: &out)
        JSONSerializer.writeInt(v.estimated.expectedTokens, to: &out)
        JSONSerializer.raw(#","max":"#, to: &out)
        JSONSerializer.writeInt(v.estimated.maxTokens, to: &out)
        JSONSerializer.raw(#"},"actual":"#, to: &out)
        JSONSerializer.writeInt(v.actual, to: &out)
        JSONSerializer.raw(#","in_range":"#, to: &out)
        bool(v.inRange, to: &out)
        JSONSerializer.raw(#","accuracy_ratio":"#, to: &out)
        JSONSerializer.writeDouble(v.accuracyRatio, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    package static func telemetry(_ t: Telemetry, to out: inout [UInt8]) {
        JSONSerializer.raw(#"{"provider":"#, to: &out)
        JSONSerializer.writeString(t.provider, to: &out)
        JSONSerializer.raw(#","used_fallback":"#, to: &out)
        bool(t.usedFallback, to: &out)
        JSONSerializer.raw(#","primary_error":"#, to: &out)
        if let p = t.primaryError { summary(p, to: &out) } else { JSONSerializer.raw("null", to: &out) }
        JSONSerializer.raw(#","retries":"#, to: &out)
        JSONSerializer.writeInt(t.retries, to: &out)
        JSONSerializer.raw(#","retry_wait_ms":"#, to: &out)
        milliseconds(t.retryWait, to: &out)
        JSONSerializer.raw(#","calls":["#, to: &out)
        for (i, call) in t.calls.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONSerializer.raw(#"{"call_index":"#, to: &out)
            JSONSerializer.writeInt(call.callIndex, to: &out)
            JSONSerializer.raw(#","attempts":"#, to: &out)
            JSONSerializer.writeInt(call.attempts, to: &out)
            JSONSerializer.raw(#","retry_wait_ms":"#, to: &out)
            milliseconds(call.retryWait, to: &out)
            JSONSerializer.raw(#","cache_bypassed":"#, to: &out)
            bool(call.cacheBypassed, to: &out)
            if call.repairs > 0 {
                // Only for a call whose answer was re-asked (RepairUnit); left out otherwise.
                JSONSerializer.raw(#","repairs":"#, to: &out)
                JSONSerializer.writeInt(call.repairs, to: &out)
            }
            if let status = call.responseCache {
                // Only with a response cache (`--response-cache`); left out otherwise.
                JSONSerializer.raw(#","response_cache":""#, to: &out)
                out.append(contentsOf: status.rawValue.utf8)
                out.append(UInt8(ascii: "\""))
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        // The wire format's fixed keys always (0 for a stage that did not run), then every other
        // stage that ran, under the name it declares.
        JSONSerializer.raw(#","durations_ms":{"#, to: &out)
        for (i, name) in fixedDurationKeys.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONSerializer.writeString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            milliseconds(t.durations[name], to: &out)
        }
        for (name, duration) in t.durations.stages where !fixedDurationKeys.contains(name) && name != "total" {
            out.append(UInt8(ascii: ","))
            JSONSerializer.writeString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            milliseconds(duration, to: &out)
        }
        JSONSerializer.raw(#","total":"#, to: &out)
        milliseconds(t.durations.total, to: &out)
        JSONSerializer.raw(#"},"uploads":{"performed":"#, to: &out)
        JSONSerializer.writeInt(t.uploads.performed, to: &out)
        JSONSerializer.raw(#","reused":"#, to: &out)
        JSONSerializer.writeInt(t.uploads.reused, to: &out)
        JSONSerializer.raw(#","skipped":"#, to: &out)
        JSONSerializer.writeInt(t.uploads.skipped, to: &out)
        JSONSerializer.raw(#"},"cache":"#, to: &out)
        if let c = t.cache { cache(c, to: &out) } else { JSONSerializer.raw("null", to: &out) }
        JSONSerializer.raw(#","token_validation":"#, to: &out)
        if let v = t.tokenValidation { tokenValidation(v, to: &out) } else { JSONSerializer.raw("null", to: &out) }
        JSONSerializer.raw(#","cost":"#, to: &out)
        if let c = t.cost { cost(c, requests: true, to: &out) } else { JSONSerializer.raw("null", to: &out) }
        if !t.hookFailures.isEmpty {
            // Only when a hook failed: without hooks the record is what it always was.
            JSONSerializer.raw(#","hook_failures":["#, to: &out)
            for (i, failure) in t.hookFailures.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONSerializer.raw(#"{"hook":"#, to: &out)
                JSONSerializer.writeString(failure.hook, to: &out)
                JSONSerializer.raw(#","phase":""#, to: &out)
                out.append(contentsOf: failure.phase.rawValue.utf8)
                JSONSerializer.raw(#"","message":"#, to: &out)
                JSONSerializer.writeString(failure.message, to: &out)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// US dollars, rounded to a billionth of a dollar (sums of binary fractions carry noise);
    /// with `requests`, the command's breakdown by request (`Cost.parts`).
    package static func cost(_ c: Cost, requests: Bool = false, to out: inout [UInt8]) {
        func dollars(_ value: Double) { JSONSerializer.writeDouble((value * 1e9).rounded() / 1e9, to: &out) }
        JSONSerializer.raw(#"{"usd":"#, to: &out)
        dollars(c.totalUSD)
        JSONSerializer.raw(#","input_usd":"#, to: &out)
        dollars(c.inputUSD)
        JSONSerializer.raw(#","cached_input_usd":"#, to: &out)
        dollars(c.cachedInputUSD)
        JSONSerializer.raw(#","cache_write_usd":"#, to: &out)
        dollars(c.cacheWriteUSD)
        JSONSerializer.raw(#","cache_storage_usd":"#, to: &out)
        dollars(c.cacheStorageUSD)
        JSONSerializer.raw(#","output_usd":"#, to: &out)
        dollars(c.outputUSD)
        JSONSerializer.raw(#","unpriced_calls":"#, to: &out)
        JSONSerializer.writeInt(c.unpricedCalls, to: &out)
        if c.unreportedCalls > 0 {
            // Priced calls whose provider did not report usage: not in `usd`, which is then a lower bound.
            JSONSerializer.raw(#","unreported_calls":"#, to: &out)
            JSONSerializer.writeInt(c.unreportedCalls, to: &out)
        }
        if requests {
            JSONSerializer.raw(#","requests":["#, to: &out)
            for (i, part) in c.parts.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONSerializer.raw(#"{"request":""#, to: &out)
                out.append(contentsOf: part.request.rawValue.utf8)
                JSONSerializer.raw(#"","model":"#, to: &out)
                JSONSerializer.writeString(part.model, to: &out)
                if let call = part.callIndex {
                    JSONSerializer.raw(#","call_index":"#, to: &out)
                    JSONSerializer.writeInt(call, to: &out)
                }
                if let attempt = part.attempt {
                    JSONSerializer.raw(#","attempt":"#, to: &out)
                    JSONSerializer.writeInt(attempt, to: &out)
                }
                JSONSerializer.raw(#","usd":"#, to: &out)
                dollars(part.usd)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
    }

    package static func cache(_ c: CacheTelemetry, to out: inout [UInt8]) {
        JSONSerializer.raw(#"{"id":"#, to: &out)
        optionalString(c.id, to: &out)
        JSONSerializer.raw(#","key":"#, to: &out)
        JSONSerializer.writeString(c.key, to: &out)
        JSONSerializer.raw(#","created":"#, to: &out)
        bool(c.created, to: &out)
        JSONSerializer.raw(#","reused":"#, to: &out)
        bool(c.reused, to: &out)
        JSONSerializer.raw(#","kind":"#, to: &out)
        optionalString(c.kind, to: &out)
        JSONSerializer.raw(#","token_count":"#, to: &out)
        if let tokens = c.tokenCount { JSONSerializer.writeInt(tokens, to: &out) } else { JSONSerializer.raw("null", to: &out) }
        if let reason = c.uncachedReason {
            JSONSerializer.raw(#","uncached_reason":"#, to: &out)
            JSONSerializer.writeString(reason, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `durations_ms` keys every record carries (WIRE-FORMAT.md, "Result"): a contract of the
    /// format, present even when no such stage ran. Any other stage's time follows under its name.
    private static let fixedDurationKeys = ["upload", "cache", "generate"]

    package static func error(_ e: APIError, failedCalls: [Int] = [], primaryError: ErrorSummary? = nil, to out: inout [UInt8]) {
        JSONSerializer.raw(#"{"kind":""#, to: &out)
        out.append(contentsOf: e.kind.rawValue.utf8)
        JSONSerializer.raw(#"","message":"#, to: &out)
        JSONSerializer.writeString(e.message, to: &out)
        JSONSerializer.raw(#","path":"#, to: &out)
        optionalString(e.path, to: &out)
        JSONSerializer.raw(#","provider":"#, to: &out)
        optionalString(e.provider, to: &out)
        JSONSerializer.raw(#","retryable":"#, to: &out)
        bool(e.retryable, to: &out)
        var details: [(String, (inout [UInt8]) -> Void)] = []
        if let code = e.code { details.append(("code", { JSONSerializer.writeString(code, to: &$0) })) }
        if let after = e.retryAfter { details.append(("retry_after_ms", { milliseconds(after, to: &$0) })) }
        if !failedCalls.isEmpty {
            details.append(("failed_calls", { JSONSerializer.write(.array(failedCalls.map(JSONValue.int)), to: &$0) }))
        }
        if let p = primaryError { details.append(("primary_error", { summary(p, to: &$0) })) }
        if !details.isEmpty {
            JSONSerializer.raw(#","details":{"#, to: &out)
            for (i, (key, write)) in details.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONSerializer.writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                write(&out)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
    }
}
