import CommandPipeline
import Testing

@Suite struct ExecutionStateTests {
    @Test func transformsReturnNewValuesAndLeaveTheOriginal() {
        let original = ExecutionState(command: command(shared: [.text("context")]))
        let replaced = original.with(sharedParts: [.text("new")], calls: original.calls, uploads: UploadCounts(performed: 1))
        #expect(original.sharedParts == [.text("context")])
        #expect(original.uploads == UploadCounts())
        #expect(replaced.sharedParts == [.text("new")])
        #expect(replaced.uploads.performed == 1)
        #expect(replaced != original)

        let cached = replaced.with(cache: CacheReference(id: "x", key: "k", model: "m"), telemetry: nil)
        #expect(replaced.cache == nil)
        #expect(cached.cache?.id == "x")

        let answered = cached.with(responses: [CallResponse(callIndex: 0, response: GenerationResponse(text: "t", model: "m", usage: .zero))], calls: [CallTelemetry(callIndex: 0, attempts: 3)])
        #expect(cached.responses.isEmpty)
        #expect(answered.responses.count == 1)
        #expect(answered.retries == 2)
    }

    @Test func effectivePartsPutSharedPartsFirst() {
        let state = ExecutionState(command: command(prompts: ["q"], shared: [.text("doc")]))
        #expect(state.effectiveParts(ofCall: 0) == [.text("doc"), .text("q")])
    }
}
