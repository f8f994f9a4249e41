import CommandPipeline
import Foundation

/// Writes a `multipart/form-data` body to a private temporary file (`PrivateTemporaryFile`),
/// copying the uploaded file in chunks, so a large upload is streamed from disk and never
/// held whole in memory.
struct MultipartBody {
    let boundary = "CommandPipeline-\(UUID().uuidString)"

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    /// The body file (the caller removes it) holding `fields` and then the file part.
    func write(fields: [(String, String)], fileField: String, file: OpenedFile, filename: String, mimeType: String) async throws -> URL {
        var head = ""
        for (name, value) in fields {
            head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        let safeName = filename.replacingOccurrences(of: "\"", with: "_").replacingOccurrences(of: "\r", with: "").replacingOccurrences(of: "\n", with: "")
        head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(fileField)\"; filename=\"\(safeName)\"\r\nContent-Type: \(mimeType)\r\n\r\n"
        let tail = "\r\n--\(boundary)--\r\n"
        return try await PrivateTemporaryFile.write(label: "upload") { body in
            try body.append(Array(head.utf8))
            try await body.append(file)
            try body.append(Array(tail.utf8))
        }.url
    }
}
