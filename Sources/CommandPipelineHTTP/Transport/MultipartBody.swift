#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CommandPipeline
import Foundation

/// Writes a `multipart/form-data` body to a temporary file, copying the uploaded file in
/// chunks through the engine's descriptor, so a large upload is streamed from disk and never
/// held whole in memory. The body file is created exclusively and readable by its owner
/// only (mode 0600): it holds a private file's bytes, and may outlive a crash.
struct MultipartBody {
    let boundary = "CommandPipeline-\(UUID().uuidString)"

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    /// A failed write of the body file.
    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    /// The body file (the caller removes it) holding `fields` and then the file part.
    func write(fields: [(String, String)], fileField: String, file: OpenedFile, filename: String, mimeType: String) async throws -> URL {
        let body = FileManager.default.temporaryDirectory.appendingPathComponent("commandpipeline-upload-\(UUID().uuidString).multipart")
        let fd = Self.createPrivate(body.path)
        guard fd >= 0 else { throw WriteError(description: "cannot create '\(body.path)': \(String(cString: strerror(errno)))") }
        var closed = false
        defer { if !closed { close(fd) } }
        do {
            var head = ""
            for (name, value) in fields {
                head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
            }
            let safeName = filename.replacingOccurrences(of: "\"", with: "_").replacingOccurrences(of: "\r", with: "").replacingOccurrences(of: "\n", with: "")
            head += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(fileField)\"; filename=\"\(safeName)\"\r\nContent-Type: \(mimeType)\r\n\r\n"
            try Self.writeAll(fd, Array(head.utf8), to: body.path)
            try await file.forEachChunk { chunk in try Self.writeAll(fd, chunk, to: body.path) }
            try Self.writeAll(fd, Array("\r\n--\(boundary)--\r\n".utf8), to: body.path)
            closed = true
            guard close(fd) == 0 else { throw WriteError(description: "cannot write '\(body.path)': \(String(cString: strerror(errno)))") }
            return body
        } catch {
            unlink(body.path)
            throw error
        }
    }

    private static func createPrivate(_ path: String) -> Int32 {
        #if canImport(Glibc)
        Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        #else
        Darwin.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        #endif
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try writeAll(fd, $0, to: path) }
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, to path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw WriteError(description: "cannot write '\(path)': \(String(cString: strerror(errno)))") }
            offset += n
        }
    }
}
