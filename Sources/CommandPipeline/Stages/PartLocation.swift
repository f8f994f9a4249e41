/// Where a part sits in a plan, rendered as the wire path used in errors.
struct PartLocation: Sendable, Hashable {
    /// `nil` for the plan's shared parts.
    var call: Int?
    var index: Int

    var path: String {
        if let call { "plan.calls[\(call)].parts[\(index)]" } else { "plan.shared_parts[\(index)]" }
    }
}
