/// Actual usage compared with the planner's estimate (seed 002 §6).
package struct TokenValidation: Sendable, Hashable {
    public var estimated: TokenEstimate
    public var actual: Int
    public var inRange: Bool
    /// actual ÷ expected; 0 when nothing was expected.
    public var accuracyRatio: Double

    public init(estimate: TokenEstimate, actual: Int) {
        self.estimated = estimate
        self.actual = actual
        self.inRange = estimate.minTokens <= actual && actual <= estimate.maxTokens
        self.accuracyRatio = estimate.expectedTokens > 0 ? Double(actual) / Double(estimate.expectedTokens) : 0
    }
}
