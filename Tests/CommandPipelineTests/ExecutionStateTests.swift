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

    /// A command keeps its fields behind one shared reference: changing a copy never changes
    /// the original, and equal commands hash alike whether or not they share it.
    @Test func aCopiedCommandIsAValue() {
        let original = command(prompts: ["q"])
        var changed = original
        changed.id = "other"
        changed.plan.calls.append(APICall(model: "m2", parts: [.text("r")]))
        changed.metadata["k"] = .string("v")
        #expect(original.id == "c" && original.plan.calls.count == 1 && original.metadata.isEmpty)
        #expect(changed.id == "other" && changed.plan.calls.count == 2 && changed.metadata["k"] == .string("v"))
        #expect(changed != original)
        let rebuilt = PlannedCommand(id: original.id, plan: original.plan, metadata: original.metadata)
        #expect(rebuilt == original && rebuilt.hashValue == original.hashValue)
        var twice = changed
        twice.id = "third"
        #expect(changed.id == "other" && twice.id == "third")
    }

    @Test func effectivePartsPutSharedPartsFirst() {
        let state = ExecutionState(command: command(prompts: ["q"], shared: [.text("doc")]))
        #expect(state.effectiveParts(ofCall: 0) == [.text("doc"), .text("q")])
    }
}
