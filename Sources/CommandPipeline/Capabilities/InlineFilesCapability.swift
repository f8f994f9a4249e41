/// A provider that takes files of some types only as bytes inside the request, not as an
/// uploaded file's id: OpenAI's Chat Completions takes an image only as an `image_url` (a URL
/// or a `data:` URL), and refuses an uploaded file's id for one. For a `file_placeholder` of
/// such a type the upload stage reads the file through the engine's file access (confined,
/// one descriptor, as for an upload) and puts its bytes in an `inline` part, which the adapter
/// sends as it sends any inline part. No upload is made, and none is counted.
public protocol InlineFilesCapability: Sendable {
    /// The largest file of `mimeType` the provider takes inline, in bytes; nil: not inline
    /// (uploaded when the provider can upload, else left a placeholder).
    func inlineLimit(for mimeType: String) -> Int?
}

extension GenerationCapability {
    /// The provider's `InlineFilesCapability`, when it has one.
    public var inlineFiles: (any InlineFilesCapability)? { self as? any InlineFilesCapability }
}
