/// A provider that can take a local file and give back a reference usable in later calls.
public protocol UploadsCapability: Sendable {
    /// Read the file through `file.open()`, never by opening `file.path` again: the engine
    /// has already opened and checked it (see `OpenedFile`).
    func upload(_ file: FileUpload) async throws -> FileReference
}

/// A local file to upload.
public struct FileUpload: Sendable, Hashable {
    /// An absolute path, for messages and file names.
    public var path: String
    public var mimeType: String
    /// The file as the engine opened and checked it; nil for an upload made from a bare path.
    public let file: OpenedFile?

    /// An upload of the file at `path`, opened (regular files only, unconfined) when read.
    public init(path: String, mimeType: String) {
        self.path = path
        self.mimeType = mimeType
        self.file = nil
    }

    /// An upload of a file the engine opened.
    public init(file: OpenedFile, mimeType: String) {
        self.path = file.path
        self.mimeType = mimeType
        self.file = file
    }

    /// The file to read: the engine's descriptor, or `path` opened now.
    public func open() throws(OpenedFile.Failure) -> OpenedFile {
        if let file { return file }
        return try OpenedFile.open(path).get()
    }

    public static func == (lhs: FileUpload, rhs: FileUpload) -> Bool {
        lhs.path == rhs.path && lhs.mimeType == rhs.mimeType && lhs.file?.identity == rhs.file?.identity
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(path)
        hasher.combine(mimeType)
        hasher.combine(file?.identity)
    }
}
