import Foundation

/// A provider that can take a local file and give back a reference usable in later calls.
public protocol UploadsCapability: Sendable {
    /// Read the file through `file.contents()`, never by opening `file.path` again: the engine
    /// has already opened and checked it, and reads it through that descriptor (`OpenedFile`).
    func upload(_ file: FileUpload) async throws -> FileReference
}

/// A local file to upload.
public struct FileUpload: Sendable, Hashable {
    /// An absolute path, for messages and file names.
    public var path: String
    public var mimeType: String
    /// The file as the engine opened and checked it; nil for an upload made from a bare path.
    package let file: OpenedFile?

    /// An upload of the file at `path`, opened (regular files only, unconfined) when read.
    public init(path: String, mimeType: String) {
        self.path = path
        self.mimeType = mimeType
        self.file = nil
    }

    /// An upload of a file the engine opened.
    package init(file: OpenedFile, mimeType: String) {
        self.path = file.path
        self.mimeType = mimeType
        self.file = file
    }

    /// The file to read: the engine's descriptor, or `path` opened now.
    package func open() throws(OpenedFile.Failure) -> OpenedFile {
        if let file { return file }
        return try OpenedFile.open(path).get()
    }

    /// The file's bytes, read through the descriptor the engine opened and checked (never by
    /// opening `path` again), off the concurrency pool's threads. Throws when the file cannot
    /// be read or changed size since it was opened.
    public func contents() async throws -> Data {
        try await open().contents()
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
