/// The unit of work: a plan plus what is needed to account for it.
///
/// (Its fields live behind one reference, copied on write: the engine copies a command into
/// the state of every run, and inline that copy retained and released each of its arrays and
/// strings — about a dozen atomic operations per command.)
public struct PlannedCommand: Sendable, Hashable, Identifiable {
    public var id: String {
        _read { yield storage.fields.id }
        _modify { yield &fields.id }
    }
    public var plan: ExecutionPlan {
        _read { yield storage.fields.plan }
        _modify { yield &fields.plan }
    }
    public var tokenEstimate: TokenEstimate? {
        _read { yield storage.fields.tokenEstimate }
        _modify { yield &fields.tokenEstimate }
    }
    /// Empty, or one estimate per call.
    public var perCallEstimates: [TokenEstimate] {
        _read { yield storage.fields.perCallEstimates }
        _modify { yield &fields.perCallEstimates }
    }
    /// Copied untouched into the result.
    public var metadata: JSONObject {
        _read { yield storage.fields.metadata }
        _modify { yield &fields.metadata }
    }

    public init(
        id: String, plan: ExecutionPlan, tokenEstimate: TokenEstimate? = nil,
        perCallEstimates: [TokenEstimate] = [], metadata: JSONObject = [:]
    ) {
        storage = Storage(Fields(id: id, plan: plan, tokenEstimate: tokenEstimate, perCallEstimates: perCallEstimates, metadata: metadata))
    }

    private struct Fields: Sendable, Hashable {
        var id: String
        var plan: ExecutionPlan
        var tokenEstimate: TokenEstimate?
        var perCallEstimates: [TokenEstimate]
        var metadata: JSONObject
    }

    /// Changed only through `fields`, which copies it first unless this value holds the only reference.
    private final class Storage: @unchecked Sendable {
        /// Unchecked: changed only through `fields`' copy-on-write, so no two accesses overlap;
        /// a runtime access check on every read cost more than the read.
        @exclusivity(unchecked) var fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var storage: Storage

    private var fields: Fields {
        _read { yield storage.fields }
        _modify {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.fields) }
            yield &storage.fields
        }
    }

    public static func == (lhs: PlannedCommand, rhs: PlannedCommand) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.fields == rhs.storage.fields
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(storage.fields) }
}
