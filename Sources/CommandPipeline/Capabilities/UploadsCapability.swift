/// A provider that can take a local file and give back a reference usable in later calls.
public protocol UploadsCapability: Sendable {
    func upload(_ file: FileUpload) async throws -> FileReference
}

/// A local file to upload.
public struct FileUpload: Sendable, Hashable {
    /// An absolute path.
    public var path: String
    public var mimeType: String
    public init(path: String, mimeType: String) {
        self.path = path
        self.mimeType = mimeType
    }
}
