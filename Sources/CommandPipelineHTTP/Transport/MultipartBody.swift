import CommandPipeline
import Foundation

/// A `multipart/form-data` body made of `head` (the fields and the file part's headers) and
/// `tail` (the closing boundary) in memory around the uploaded file, which is never copied:
/// the own transport sends head, then the file streamed from the descriptor it was opened
/// with (`HTTP1FileBody`), then tail, `Content-Length` their checked sum
/// (`HTTPClient.upload(_:multipart:)`). Only the URLSession path (Darwin, or
/// `COMMANDPIPELINE_HTTP_TRANSPORT=urlsession`) writes the whole body to a private temporary
/// file first (`writeTemporaryFile`), since `URLSession` uploads from a file.
struct MultipartBody: Sendable {
    let boundary: String
    let head: [UInt8]
    let file: OpenedFile
    let tail: [UInt8]

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    /// `fields` and then the file part (`fileField`, named `filename`, of type `mimeType`).
    /// `boundary`: fixed by tests; a fresh random one otherwise.
    init(
        fields: [(String, String)], fileField: String, file: OpenedFile, filename: String, mimeType: String,
        boundary: String = "CommandPipeline-\(UUID().uuidString)"
    ) {
        self.boundary = boundary
        var head = ""
        for (name, value) in fields {
            head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        let safeName = filename.replacingOccurrences(of: "\"", with: "_").replacingOccurrences(of: "\r", with: "").replacingOccurrences(of: "\n", with: "")
        head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(fileField)\"; filename=\"\(safeName)\"\r\nContent-Type: \(mimeType)\r\n\r\n"
        self.head = Array(head.utf8)
        self.file = file
        self.tail = Array("\r\n--\(boundary)--\r\n".utf8)
    }

    /// The body length: head + the file's size when opened + tail; nil past `Int.max`.
    var length: Int? { HTTP1FileBody.length(head: head.count, file: file.size, tail: tail.count) }

    /// The whole body in a private temporary file (the caller removes it), the file copied in
    /// chunks: for the URLSession path only, which uploads from a file. A file that changed size
    /// since it was opened fails (`OpenedFile.Failure`).
    func writeTemporaryFile() async throws -> URL {
        try await PrivateTemporaryFile.body(head: head, file: file, tail: tail)
    }
}
