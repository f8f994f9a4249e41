/// The unit of work: a plan plus what is needed to account for it.
///
/// (Its fields live behind one reference, copied on write (`CopyOnWrite`): the engine copies a
/// command into the state of every run, and inline that copy retained and released each of its
/// arrays and strings — about a dozen atomic operations per command.)
public struct PlannedCommand: Sendable, Hashable, Identifiable {
    public var id: String {
        _read { yield fields.value.id }
        _modify { yield &fields.value.id }
    }
    public var plan: ExecutionPlan {
        _read { yield fields.value.plan }
        _modify { yield &fields.value.plan }
    }
    public var tokenEstimate: TokenEstimate? {
        _read { yield fields.value.tokenEstimate }
        _modify { yield &fields.value.tokenEstimate }
    }
    /// Empty, or one estimate per call.
    public var perCallEstimates: [TokenEstimate] {
        _read { yield fields.value.perCallEstimates }
        _modify { yield &fields.value.perCallEstimates }
    }
    /// Copied untouched into the result.
    public var metadata: JSONObject {
        _read { yield fields.value.metadata }
        _modify { yield &fields.value.metadata }
    }

    public init(
        id: String, plan: ExecutionPlan, tokenEstimate: TokenEstimate? = nil,
        perCallEstimates: [TokenEstimate] = [], metadata: JSONObject = [:]
    ) {
        fields = CopyOnWrite(Fields(id: id, plan: plan, tokenEstimate: tokenEstimate, perCallEstimates: perCallEstimates, metadata: metadata))
    }

    private struct Fields: Sendable, Hashable {
        var id: String
        var plan: ExecutionPlan
        var tokenEstimate: TokenEstimate?
        var perCallEstimates: [TokenEstimate]
        var metadata: JSONObject
    }

    private var fields: CopyOnWrite<Fields>

    public static func == (lhs: PlannedCommand, rhs: PlannedCommand) -> Bool {
        lhs.fields.shares(with: rhs.fields) || lhs.fields.value == rhs.fields.value
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(fields.value) }
}
