/// A value behind one reference, copied only when it is changed while shared — what `Array`
/// does for its elements. The package's one copy-on-write helper: a value that is large and
/// passed through many frames (`PlannedCommand`, `GenerationConfig`, `Telemetry`) holds its fields in one, so a
/// copy of it is one retain, not one per field. Immutable large values use `Box`.
struct CopyOnWrite<Value: Sendable>: Sendable {
    /// Changed only through `value`'s `_modify`, which copies it first unless this is the only
    /// reference: no two holders ever see a change, so sharing it across tasks is safe.
    ///
    /// `@exclusivity(unchecked)`: the package's one such trick, here only. Every read of a
    /// command's or a telemetry's field goes through this cell, and the runtime access check
    /// (a thread-local lookup each) cost more than the access (ADR 0010: −9% of the engine's
    /// overhead). It is safe because the cell is changed only in `_modify`, while uniquely
    /// referenced, so no two accesses can overlap.
    private final class Storage: @unchecked Sendable {
        @exclusivity(unchecked) var value: Value
        init(_ value: Value) { self.value = value }
    }

    private var storage: Storage

    init(_ value: Value) { storage = Storage(value) }

    var value: Value {
        _read { yield storage.value }
        _modify {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.value) }
            yield &storage.value
        }
    }

    /// Whether both hold the same storage (then their values are equal without comparing).
    func shares(with other: CopyOnWrite<Value>) -> Bool { storage === other.storage }
}
