extension Optional {
    /// Whether a value is there, checked on the tag alone. `x != nil` with an `Equatable`
    /// wrapped type can compile to `Optional`'s `==`: a copy of both sides and a comparison,
    /// field by field (the fallback check copied a whole `APICall` three times per command).
    @inline(__always)
    var isPresent: Bool {
        if case .some = self { true } else { false }
    }
}
