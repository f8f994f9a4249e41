import CommandPipeline
import Foundation
import Testing

/// The values that keep their large or rarely set fields behind one reference (ADR 0010, fourth
/// stop): `GenerationConfig` (copy-on-write), `GenerationRequest.cache`, the rare fields of
/// `GenerationResponse`, `CallResponse` and `APIError` (immutable boxes). Each stays a value: a
/// changed copy never changes the original, and equality and hashing follow the fields, never
/// whether two values share a box.
@Suite struct CompactValueTests {
    @Test func aConfigIsAValueAndAnEmptyOneIsSharedSafely() {
        var changed = GenerationConfig()
        changed.temperature = 0.5
        changed.tools = [ToolDefinition(name: "f", parameters: .object([:]))]
        changed.providerOptions["k"] = .string("v")
        let fresh = GenerationConfig()
        #expect(fresh.temperature == nil && fresh.tools == nil && fresh.providerOptions.isEmpty, "changing one empty config changed another")
        #expect(changed.temperature == 0.5 && changed.tools?.count == 1 && changed.providerOptions["k"] == .string("v"))
        #expect(changed != fresh)

        let original = GenerationConfig(systemInstruction: "be brief", maxTokens: 10)
        var copy = original
        copy.maxTokens = 20
        #expect(original.maxTokens == 10 && copy.maxTokens == 20)
        #expect(original.withoutSystemInstruction().systemInstruction == nil && original.systemInstruction == "be brief")

        // Set and unset again: equal to one never set, and hashed alike.
        var undone = GenerationConfig()
        undone.seed = 7
        undone.seed = nil
        #expect(undone == GenerationConfig() && undone.hashValue == GenerationConfig().hashValue)
        #expect(GenerationConfig(maxTokens: 10, stop: ["x"]) == GenerationConfig(maxTokens: 10, stop: ["x"]))
        #expect(GenerationConfig(maxTokens: 10) != GenerationConfig(maxTokens: 11))
    }

    @Test func aRequestsCacheIsPartOfItsValue() {
        let made = Date(timeIntervalSince1970: 1_700_000_000)
        let reference = CacheReference(id: "c1", key: "k", model: "m", createdAt: made)
        var request = GenerationRequest(model: "m", parts: [.text("q")])
        #expect(request.cache == nil)
        let plain = request
        request.cache = reference
        #expect(request.cache?.id == "c1" && plain.cache == nil)
        #expect(request != plain)
        let rebuilt = GenerationRequest(model: "m", parts: [.text("q")], cache: CacheReference(id: "c1", key: "k", model: "m", createdAt: made))
        #expect(rebuilt == request && rebuilt.hashValue == request.hashValue)
        #expect(GenerationRequest(model: "m", parts: [], cache: CacheReference(id: "c2", key: "k", model: "m", createdAt: made)) != GenerationRequest(model: "m", parts: [], cache: reference))
        request.cache = nil
        #expect(request == plain && request.hashValue == plain.hashValue)
    }

    @Test func anAnswersRareFieldsTravelIntoTheResponseAndStayValues() {
        let call = ToolCall(id: "t1", name: "lookup", arguments: .object(["city": .string("Oslo")]))
        var response = GenerationResponse(text: "", model: "m", finishReason: "tool_calls", usage: .zero, parsed: .int(1), toolCalls: [call])
        response.deployment = "eu"
        response.provider = "p"
        let answer = CallResponse(callIndex: 2, response: response)
        #expect(answer.parsed == .int(1) && answer.toolCalls == [call] && answer.deployment == "eu" && answer.provider == "p" && answer.cost == nil)

        // Changing one field of a copy (as the repair unit changes a tool call's arguments) leaves the original.
        var repaired = response
        repaired.toolCalls[0].arguments = .object([:])
        #expect(response.toolCalls[0].arguments == .object(["city": .string("Oslo")]))
        #expect(repaired != response && repaired.deployment == "eu")

        var priced = answer
        priced.cost = Cost(inputUSD: 1)
        #expect(answer.cost == nil && priced.cost?.inputUSD == 1 && priced.toolCalls == [call])
        #expect(priced != answer)

        // Empty fields set explicitly equal fields never set; set and unset again, too.
        let plain = GenerationResponse(text: "t", model: "m", usage: .zero)
        var undone = GenerationResponse(text: "t", model: "m", usage: .zero, toolCalls: [])
        undone.deployment = "eu"
        undone.deployment = nil
        #expect(undone == plain && undone.hashValue == plain.hashValue)
        let explicit = CallResponse(callIndex: 0, text: "t", model: "m", finishReason: "stop", usage: .zero, cost: nil, parsed: nil, toolCalls: [])
        #expect(explicit == CallResponse(callIndex: 0, response: plain) && explicit.hashValue == CallResponse(callIndex: 0, response: plain).hashValue)
        #expect(CallResponse(callIndex: 0, response: plain) != CallResponse(callIndex: 0, response: response))
        // Built apart, the same fields: equal and hashed alike (each holds its own box).
        let twin = GenerationResponse(text: "", model: "m", finishReason: "tool_calls", usage: .zero, parsed: .int(1), toolCalls: [call])
        var again = twin
        again.deployment = "eu"
        again.provider = "p"
        #expect(again == response && again.hashValue == response.hashValue)
        #expect(CallResponse(callIndex: 2, response: again) == answer && CallResponse(callIndex: 2, response: again).hashValue == answer.hashValue)
    }

    @Test func anErrorKeepsItsBilledUsageAndWhatItWraps() {
        struct Wrapped: Error, Sendable {}
        let plain = APIError(.providerError, "boom")
        #expect(plain.billedUsage == nil && plain.underlying == nil)
        let wrapping = APIError(.providerError, "boom", underlying: Wrapped())
        let usage = Usage(promptTokens: 3, completionTokens: 4)
        let billed = wrapping.billed(usage)
        #expect(billed.billedUsage == usage && billed.underlying is Wrapped)
        #expect(wrapping.billedUsage == nil, "billing a copy changed the original")
        var unwrapped = billed
        unwrapped.underlying = nil
        #expect(unwrapped.billedUsage == usage && unwrapped.underlying == nil && billed.underlying is Wrapped)
        #expect(billed.billed(Usage(promptTokens: 9)).billedUsage == usage, "an error already billed keeps its usage")
    }

    /// The fold adds the telemetry's parts up as plain fields and makes a `Telemetry` for each
    /// summary; a summary is made from the fold, not a copy of it: events folded after it do not
    /// change it, and it has only what was folded before it.
    @Test func aSummaryIsTheFoldAsOfWhenItWasMade() {
        var fold = LogFold(provider: "p")
        fold.add(.stageFinished("generate", duration: .seconds(1)))
        fold.add(.uploadPerformed(path: "/a", uri: "u"))
        let early = fold.summary(total: .seconds(2), estimate: nil)
        #expect(early.telemetry.durations["generate"] == .seconds(1) && early.telemetry.uploads.performed == 1)
        #expect(early.telemetry.provider == "p" && early.telemetry.tokenValidation == nil && early.usage == .zero)

        fold.add(.callFinished(CallResponse(callIndex: 0, text: "t", model: "m", finishReason: "stop", usage: Usage(promptTokens: 5, completionTokens: 5))))
        let done = fold.summary(total: .seconds(3), estimate: TokenEstimate(minTokens: 1, expectedTokens: 10, maxTokens: 20))
        #expect(done.telemetry.durations.total == .seconds(3) && done.telemetry.tokenValidation?.actual == 10 && done.usage.totalTokens == 10)
        #expect(early.telemetry.durations.total == .seconds(2) && early.usage == .zero, "a later summary changed an earlier one")

        fold.add(.stageFinished("telemetry", duration: .seconds(1)))
        let last = fold.summary(total: .seconds(4), estimate: nil)
        #expect(last.telemetry.durations["telemetry"] == .seconds(1) && last.telemetry.durations["generate"] == .seconds(1))
        #expect(last.telemetry.tokenValidation == nil)
        #expect(done.telemetry.durations["telemetry"] == .zero, "an event folded after a summary changed it")
    }

    /// A fan-out's calls fail in any order; the summary names them in call order, and only the
    /// primary execution's (a fallback's failure is the command's error, not a failed call).
    @Test func failedCallsAreInCallOrderAndThePrimarysOnly() {
        var fold = LogFold(provider: "p")
        for call in [3, 0, 2] { fold.add(.callFailed(call: call, error: APIError(.providerError, "no"))) }
        #expect(fold.summary(total: .zero, estimate: nil).failedCalls == [0, 2, 3])
        fold.add(.fallbackStarted(model: "m", primaryError: APIError(.providerError, "no")))
        fold.add(.callFailed(call: 0, error: APIError(.providerError, "no")))
        #expect(fold.summary(total: .zero, estimate: nil, partials: true).failedCalls == [0, 2, 3])
    }
}
