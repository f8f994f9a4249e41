/// MIME types inferred from file extensions, for placeholders that do not name one.
package enum MIMEType {
    static let byExtension: [String: String] = [
        "pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown", "csv": "text/csv",
        "html": "text/html", "htm": "text/html", "json": "application/json", "jsonl": "application/jsonl",
        "xml": "application/xml", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
        "gif": "image/gif", "webp": "image/webp", "heic": "image/heic", "mp3": "audio/mpeg", "wav": "audio/wav",
        "flac": "audio/flac", "ogg": "audio/ogg", "mp4": "video/mp4", "mov": "video/quicktime",
        "webm": "video/webm", "py": "text/x-python", "js": "text/javascript", "swift": "text/x-swift",
    ]

    /// The type for `path`'s extension, or `application/octet-stream`.
    package static func infer(fromPath path: String) -> String {
        guard let dot = path.lastIndex(of: "."), !path[dot...].contains("/") else { return "application/octet-stream" }
        let ext = path[path.index(after: dot)...].lowercased()
        return byExtension[ext] ?? "application/octet-stream"
    }
}
