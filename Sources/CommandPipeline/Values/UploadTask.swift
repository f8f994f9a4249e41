/// An explicit request to upload the file behind one placeholder part.
public struct UploadTask: Sendable, Hashable {
    /// Which list of parts `partIndex` indexes.
    public enum Target: Sendable, Hashable {
        /// A call's own parts (not counting shared parts).
        case call(Int)
        /// The plan's shared parts.
        case shared
    }

    public var target: Target
    public var partIndex: Int
    /// A required upload fails the command when the provider cannot upload;
    /// an optional one leaves the placeholder in place.
    public var required: Bool

    public init(partIndex: Int, target: Target = .call(0), required: Bool = true) {
        self.target = target
        self.partIndex = partIndex
        self.required = required
    }
}
