/// What the planner expected a command (or one call) to cost, checked against
/// actual usage by the telemetry stage.
public struct TokenEstimate: Sendable, Hashable {
    public var minTokens: Int
    public var expectedTokens: Int
    public var maxTokens: Int
    public var confidence: Double?

    public init(minTokens: Int, expectedTokens: Int, maxTokens: Int, confidence: Double? = nil) {
        self.minTokens = minTokens
        self.expectedTokens = expectedTokens
        self.maxTokens = maxTokens
        self.confidence = confidence
    }
}
