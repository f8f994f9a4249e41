/// An immutable heap cell for a large value. Holding big, rarely changed values (the
/// command inside `ExecutionState`, the telemetry inside `APIError`) behind one keeps
/// those structs small, so passing them through async stage frames copies a few words
/// instead of hundreds of bytes. The cell never changes, so value semantics hold.
final class Box<Value: Sendable>: Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A large optional value that is usually nil, held in a `Box` so that the struct it sits in
/// stays one word wider, not the value's size (`GenerationRequest.cache`, the rare fields of an
/// answer: `AnswerExtras.Field`). A value like any
/// other: setting it makes a new box, and two are equal when their values are.
struct BoxedOptional<Value: Sendable & Hashable>: Sendable, Hashable {
    private var box: Box<Value>?

    init(_ value: Value?) { box = value.map(Box.init) }

    var value: Value? {
        get { box?.value }
        set { box = newValue.map(Box.init) }
    }

    /// Whether there is a value (without copying it out).
    var isPresent: Bool { box != nil }

    /// One part of the value, read in the box (without copying the whole value out).
    func read<Part>(_ part: (Value) -> Part) -> Part? { box.map { part($0.value) } }

    static func == (lhs: BoxedOptional, rhs: BoxedOptional) -> Bool { lhs.box === rhs.box || lhs.value == rhs.value }
    func hash(into hasher: inout Hasher) { hasher.combine(value) }
}
