import CommandPipeline
import Testing

@Suite struct ExecutionStateTests {
    @Test func transformsReturnNewValuesAndLeaveTheOriginal() {
        let original = ExecutionState(command: command(shared: [.text("context")]))
        let replaced = original.with(sharedParts: [.text("new")], calls: original.calls)
        #expect(original.sharedParts == [.text("context")])
        #expect(replaced.sharedParts == [.text("new")])
        #expect(replaced != original)

        let cached = replaced.with(cache: CacheReference(id: "x", key: "k", model: "m"))
        #expect(replaced.cache == nil)
        #expect(cached.cache?.id == "x")

        let answered = cached.with(responses: [CallResponse(callIndex: 0, response: GenerationResponse(text: "t", model: "m", usage: .zero))])
        #expect(cached.responses.isEmpty)
        #expect(answered.responses.count == 1)

        let fallback = answered.forFallback(APICall(model: "f", parts: [.text("q")]))
        #expect(fallback.sharedParts == [.text("new")] && fallback.cache == nil && fallback.responses.isEmpty)
        #expect(fallback.callPaths.path(0) == "plan.fallback_call")
        #expect(answered.callPaths.path(2) == "plan.calls[2]")
    }

    @Test func effectivePartsPutSharedPartsFirst() {
        let state = ExecutionState(command: command(prompts: ["q"], shared: [.text("doc")]))
        #expect(state.effectiveParts(ofCall: 0) == [.text("doc"), .text("q")])
    }
}
