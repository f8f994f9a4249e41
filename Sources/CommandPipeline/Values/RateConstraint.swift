/// Limits on how fast the plan's calls may be sent.
public struct RateConstraint: Sendable, Hashable {
    public var requestsPerMinute: Int?
    public var tokensPerMinute: Int?
    public init(requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
    }
}
