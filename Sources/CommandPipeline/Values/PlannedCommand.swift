/// The unit of work: a plan plus what is needed to account for it.
public struct PlannedCommand: Sendable, Hashable, Identifiable {
    public var id: String
    public var plan: ExecutionPlan
    public var tokenEstimate: TokenEstimate?
    /// Empty, or one estimate per call.
    public var perCallEstimates: [TokenEstimate]
    /// Copied untouched into the result.
    public var metadata: JSONObject

    public init(
        id: String, plan: ExecutionPlan, tokenEstimate: TokenEstimate? = nil,
        perCallEstimates: [TokenEstimate] = [], metadata: JSONObject = [:]
    ) {
        self.id = id
        self.plan = plan
        self.tokenEstimate = tokenEstimate
        self.perCallEstimates = perCallEstimates
        self.metadata = metadata
    }
}
