/// An immutable heap cell for a large value. Holding big, rarely changed values (the
/// command inside `ExecutionState`, the telemetry inside `APIError`) behind one keeps
/// those structs small, so passing them through async stage frames copies a few words
/// instead of hundreds of bytes. The cell never changes, so value semantics hold.
final class Box<Value: Sendable>: Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
