/// Derives the cache key of a shared context: equal model, system instruction and
/// shared parts give equal keys, in any process.
package enum CacheKey {
    package static func derive(model: String, systemInstruction: String?, parts: [APIPart]) -> String {
        var hasher = SHA256()
        func field(_ tag: String, _ value: String) {
            hasher.update("\(tag)\(value.utf8.count):")
            hasher.update(value)
        }
        field("m", model)
        field("s", systemInstruction ?? "")
        for part in parts {
            switch part {
            case .text(let text): field("t", text)
            case .fileRef(let ref): field("r", ref.uri); field("y", ref.mimeType)
            case .filePlaceholder(let p): field("p", p.path); field("y", p.effectiveMimeType)
            case .inline(let inline): field("i", SHA256.hex(inline.data)); field("y", inline.mimeType)
            case .history(let history):
                for turn in history {
                    field("q", turn.question)
                    field("a", turn.answer)
                    for call in turn.toolCalls { field("c", JSONSerializer.serialize(call.wireValue)) }
                }
            case .toolResult(let result): field("o", JSONSerializer.serialize(result.wireValue))
            }
        }
        return String(hasher.finalizeHex().prefix(32))
    }
}
