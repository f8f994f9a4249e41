/// Writes result records (and their parts) straight to JSON bytes, through the primitives of
/// `JSONSerializer`, the one JSON writer (request bodies and commands are `JSONValue` trees it
/// writes; results and events are laid out here and in `EventWriter`). This is the one
/// definition of the output format; it is only ever written, never rebuilt as a tree.
/// (Building `JSONValue` trees first cost more than everything else in the CLI together.)
public enum ResultWriter {
    /// Appends one succeeded result record (no newline).
    public static func succeeded(_ command: FinalizedCommand, index: Int, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"id":"#.utf8)
        JSONSerializer.writeString(command.id, to: &out)
        out.append(contentsOf: #","index":"#.utf8)
        JSONSerializer.writeInt(index, to: &out)
        out.append(contentsOf: #","status":"succeeded","responses":"#.utf8)
        responses(command.responses, to: &out)
        out.append(contentsOf: #","usage":"#.utf8)
        usage(command.usage, to: &out)
        out.append(contentsOf: #","telemetry":"#.utf8)
        telemetry(command.telemetry, to: &out)
        out.append(contentsOf: #","metadata":"#.utf8)
        JSONSerializer.write(.object(command.metadata), to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Appends one failed result record (no newline). Responses of calls that succeeded
    /// before the failure are kept, with their usage.
    public static func failed(
        _ error: APIError, id: String, index: Int, metadata: JSONObject, telemetry: Telemetry, partialResponses: [CallResponse] = [],
        failedCalls: [Int] = [], to out: inout [UInt8]
    ) {
        out.append(contentsOf: #"{"id":"#.utf8)
        JSONSerializer.writeString(id, to: &out)
        out.append(contentsOf: #","index":"#.utf8)
        JSONSerializer.writeInt(index, to: &out)
        out.append(contentsOf: #","status":"failed","error":"#.utf8)
        self.error(error, failedCalls: failedCalls, primaryError: telemetry.primaryError, to: &out)
        out.append(contentsOf: #","telemetry":"#.utf8)
        self.telemetry(telemetry, to: &out)
        if !partialResponses.isEmpty {
            out.append(contentsOf: #","responses":"#.utf8)
            responses(partialResponses, to: &out)
            out.append(contentsOf: #","usage":"#.utf8)
            usage(partialResponses.reduce(Usage.zero) { $0 + $1.usage }, to: &out)
        }
        out.append(contentsOf: #","metadata":"#.utf8)
        JSONSerializer.write(.object(metadata), to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Appends the record of a command's outcome (no newline).
    public static func record(_ outcome: CommandOutcome, index: Int, to out: inout [UInt8]) {
        switch outcome.result {
        case .success(let finalized): succeeded(finalized, index: index, to: &out)
        case .failure(let error):
            let command = outcome.command
            failed(
                error, id: command.id, index: index, metadata: command.metadata, telemetry: outcome.telemetry,
                partialResponses: outcome.partialResponses, failedCalls: outcome.failedCalls, to: &out)
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
        out.append(contentsOf: #"{"call_index":"#.utf8)
        JSONSerializer.writeInt(r.callIndex, to: &out)
        out.append(contentsOf: #","text":"#.utf8)
        JSONSerializer.writeString(r.text, to: &out)
        out.append(contentsOf: #","model":"#.utf8)
        JSONSerializer.writeString(r.model, to: &out)
        out.append(contentsOf: #","finish_reason":"#.utf8)
        JSONSerializer.writeString(r.finishReason, to: &out)
        out.append(contentsOf: #","usage":"#.utf8)
        usage(r.usage, to: &out)
        if let c = r.cost {
            // Only with a model catalog that prices the model; left out otherwise.
            out.append(contentsOf: #","cost":"#.utf8)
            cost(c, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    package static func usage(_ u: Usage, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"prompt_tokens":"#.utf8)
        JSONSerializer.writeInt(u.promptTokens, to: &out)
        out.append(contentsOf: #","completion_tokens":"#.utf8)
        JSONSerializer.writeInt(u.completionTokens, to: &out)
        out.append(contentsOf: #","total_tokens":"#.utf8)
        JSONSerializer.writeInt(u.totalTokens, to: &out)
        out.append(contentsOf: #","cached_tokens":"#.utf8)
        JSONSerializer.writeInt(u.cachedTokens, to: &out)
        if u.cacheCreationTokens > 0 {
            // Only providers that report cache writes (Anthropic) have it; the key is left out otherwise.
            out.append(contentsOf: #","cache_creation_tokens":"#.utf8)
            JSONSerializer.writeInt(u.cacheCreationTokens, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    package static func optionalString(_ s: String?, to out: inout [UInt8]) {
        if let s { JSONSerializer.writeString(s, to: &out) } else { out.append(contentsOf: "null".utf8) }
    }

    package static func bool(_ b: Bool, to out: inout [UInt8]) { out.append(contentsOf: (b ? "true" : "false").utf8) }

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

    package static func summary(_ s: ErrorSummary, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"kind":""#.utf8)
        out.append(contentsOf: s.kind.rawValue.utf8)
        out.append(contentsOf: #"","message":"#.utf8)
        JSONSerializer.writeString(s.message, to: &out)
        out.append(contentsOf: #","provider":"#.utf8)
        optionalString(s.provider, to: &out)
        out.append(contentsOf: #","retryable":"#.utf8)
        bool(s.retryable, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    package static func tokenValidation(_ v: TokenValidation, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"estimated":{"min":"#.utf8)
        JSONSerializer.writeInt(v.estimated.minTokens, to: &out)
        out.append(contentsOf: #","expected":"#.utf8)
        JSONSerializer.writeInt(v.estimated.expectedTokens, to: &out)
        out.append(contentsOf: #","max":"#.utf8)
        JSONSerializer.writeInt(v.estimated.maxTokens, to: &out)
        out.append(contentsOf: #"},"actual":"#.utf8)
        JSONSerializer.writeInt(v.actual, to: &out)
        out.append(contentsOf: #","in_range":"#.utf8)
        bool(v.inRange, to: &out)
        out.append(contentsOf: #","accuracy_ratio":"#.utf8)
        JSONSerializer.writeDouble(v.accuracyRatio, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    package static func telemetry(_ t: Telemetry, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"provider":"#.utf8)
        JSONSerializer.writeString(t.provider, to: &out)
        out.append(contentsOf: #","used_fallback":"#.utf8)
        bool(t.usedFallback, to: &out)
        out.append(contentsOf: #","primary_error":"#.utf8)
        if let p = t.primaryError { summary(p, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","retries":"#.utf8)
        JSONSerializer.writeInt(t.retries, to: &out)
        out.append(contentsOf: #","retry_wait_ms":"#.utf8)
        milliseconds(t.retryWait, to: &out)
        out.append(contentsOf: #","calls":["#.utf8)
        for (i, call) in t.calls.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"call_index":"#.utf8)
            JSONSerializer.writeInt(call.callIndex, to: &out)
            out.append(contentsOf: #","attempts":"#.utf8)
            JSONSerializer.writeInt(call.attempts, to: &out)
            out.append(contentsOf: #","retry_wait_ms":"#.utf8)
            milliseconds(call.retryWait, to: &out)
            out.append(contentsOf: #","cache_bypassed":"#.utf8)
            bool(call.cacheBypassed, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        // The standard stages always, then any other stage by name (the telemetry stage's own time is left out).
        out.append(contentsOf: #","durations_ms":{"upload":"#.utf8)
        milliseconds(t.durations[UploadStage.name], to: &out)
        out.append(contentsOf: #","cache":"#.utf8)
        milliseconds(t.durations[CacheStage.name], to: &out)
        out.append(contentsOf: #","generate":"#.utf8)
        milliseconds(t.durations[GenerateStage.name], to: &out)
        for (name, duration) in t.durations.otherStages where !standardStages.contains(name) {
            out.append(UInt8(ascii: ","))
            JSONSerializer.writeString(name, to: &out)
            out.append(UInt8(ascii: ":"))
            milliseconds(duration, to: &out)
        }
        out.append(contentsOf: #","total":"#.utf8)
        milliseconds(t.durations.total, to: &out)
        out.append(contentsOf: #"},"uploads":{"performed":"#.utf8)
        JSONSerializer.writeInt(t.uploads.performed, to: &out)
        out.append(contentsOf: #","reused":"#.utf8)
        JSONSerializer.writeInt(t.uploads.reused, to: &out)
        out.append(contentsOf: #","skipped":"#.utf8)
        JSONSerializer.writeInt(t.uploads.skipped, to: &out)
        out.append(contentsOf: #"},"cache":"#.utf8)
        if let c = t.cache { cache(c, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","token_validation":"#.utf8)
        if let v = t.tokenValidation { tokenValidation(v, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","cost":"#.utf8)
        if let c = t.cost { cost(c, to: &out) } else { out.append(contentsOf: "null".utf8) }
        if !t.hookFailures.isEmpty {
            // Only when a hook failed: without hooks the record is what it always was.
            out.append(contentsOf: #","hook_failures":["#.utf8)
            for (i, failure) in t.hookFailures.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: #"{"hook":"#.utf8)
                JSONSerializer.writeString(failure.hook, to: &out)
                out.append(contentsOf: #","phase":""#.utf8)
                out.append(contentsOf: failure.phase.rawValue.utf8)
                out.append(contentsOf: #"","message":"#.utf8)
                JSONSerializer.writeString(failure.message, to: &out)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// US dollars, rounded to a billionth of a dollar (sums of binary fractions carry noise).
    package static func cost(_ c: Cost, to out: inout [UInt8]) {
        func dollars(_ value: Double) { JSONSerializer.writeDouble((value * 1e9).rounded() / 1e9, to: &out) }
        out.append(contentsOf: #"{"usd":"#.utf8)
        dollars(c.totalUSD)
        out.append(contentsOf: #","input_usd":"#.utf8)
        dollars(c.inputUSD)
        out.append(contentsOf: #","cached_input_usd":"#.utf8)
        dollars(c.cachedInputUSD)
        out.append(contentsOf: #","cache_write_usd":"#.utf8)
        dollars(c.cacheWriteUSD)
        out.append(contentsOf: #","output_usd":"#.utf8)
        dollars(c.outputUSD)
        out.append(contentsOf: #","unpriced_calls":"#.utf8)
        JSONSerializer.writeInt(c.unpricedCalls, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    package static func cache(_ c: CacheTelemetry, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"id":"#.utf8)
        optionalString(c.id, to: &out)
        out.append(contentsOf: #","key":"#.utf8)
        JSONSerializer.writeString(c.key, to: &out)
        out.append(contentsOf: #","created":"#.utf8)
        bool(c.created, to: &out)
        out.append(contentsOf: #","reused":"#.utf8)
        bool(c.reused, to: &out)
        out.append(contentsOf: #","kind":"#.utf8)
        optionalString(c.kind?.rawValue, to: &out)
        out.append(contentsOf: #","token_count":"#.utf8)
        if let tokens = c.tokenCount { JSONSerializer.writeInt(tokens, to: &out) } else { out.append(contentsOf: "null".utf8) }
        if let reason = c.uncachedReason {
            out.append(contentsOf: #","uncached_reason":"#.utf8)
            JSONSerializer.writeString(reason, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    private static let standardStages: Set<String> = [UploadStage.name, CacheStage.name, GenerateStage.name, TelemetryStage.name, "total"]

    package static func error(_ e: APIError, failedCalls: [Int] = [], primaryError: ErrorSummary? = nil, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"kind":""#.utf8)
        out.append(contentsOf: e.kind.rawValue.utf8)
        out.append(contentsOf: #"","message":"#.utf8)
        JSONSerializer.writeString(e.message, to: &out)
        out.append(contentsOf: #","path":"#.utf8)
        optionalString(e.path, to: &out)
        out.append(contentsOf: #","provider":"#.utf8)
        optionalString(e.provider, to: &out)
        out.append(contentsOf: #","retryable":"#.utf8)
        bool(e.retryable, to: &out)
        var details: [(String, (inout [UInt8]) -> Void)] = []
        if let code = e.code { details.append(("code", { JSONSerializer.writeString(code, to: &$0) })) }
        if let after = e.retryAfter { details.append(("retry_after_ms", { milliseconds(after, to: &$0) })) }
        if !failedCalls.isEmpty {
            details.append(("failed_calls", { JSONSerializer.write(.array(failedCalls.map(JSONValue.int)), to: &$0) }))
        }
        if let p = primaryError { details.append(("primary_error", { summary(p, to: &$0) })) }
        if !details.isEmpty {
            out.append(contentsOf: #","details":{"#.utf8)
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
