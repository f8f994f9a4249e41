/// A provider that can deliver an answer piece by piece.
/// The stream ends with exactly one `.completed`, equal to what `generate` would return.
public protocol StreamingCapability: Sendable {
    func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error>
}

public enum GenerationChunk: Sendable, Hashable {
    case delta(String)
    /// A tool call whose arguments are complete (optional: the engine reports the calls of the
    /// final response that no chunk announced).
    case toolCall(ToolCall)
    case completed(GenerationResponse)
}
