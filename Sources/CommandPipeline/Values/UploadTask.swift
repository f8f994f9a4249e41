/// An explicit request to upload the file behind one placeholder part.
public struct UploadTask: Sendable, Hashable {
    /// Which list of parts `partIndex` indexes: the own parts (not counting shared parts) of
    /// call `callIndex`, or, when nil, the plan's shared parts.
    public var callIndex: Int?
    public var partIndex: Int
    /// A required upload fails the command when the provider cannot upload;
    /// an optional one leaves the placeholder in place.
    public var required: Bool

    /// - Parameter callIndex: nil: the plan's shared parts.
    public init(partIndex: Int, callIndex: Int? = 0, required: Bool = true) {
        self.callIndex = callIndex
        self.partIndex = partIndex
        self.required = required
    }
}
