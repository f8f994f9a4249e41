#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CommandPipeline
import Foundation
import Synchronization

/// The bytes of an upload, copied in chunks through the engine's descriptor into a private
/// temporary file (created exclusively, mode 0600), so the request streams them from disk
/// and a large file is never whole in memory. The caller removes the file.
enum GeminiUploadBody {
    struct Written: Sendable {
        var url: URL
        var size: Int
    }

    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    static func write(_ file: OpenedFile) async throws -> Written {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("commandpipeline-gemini-\(UUID().uuidString).upload")
        let path = url.path
        #if canImport(Glibc)
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        #else
        let fd = Darwin.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        #endif
        guard fd >= 0 else { throw WriteError(description: "cannot create '\(path)': \(String(cString: strerror(errno)))") }
        let written = Atomic<Int>(0)
        do {
            try await file.forEachChunk { chunk in
                var offset = 0
                while offset < chunk.count {
                    let n = Foundation.write(fd, chunk.baseAddress! + offset, chunk.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw WriteError(description: "cannot write '\(path)': \(String(cString: strerror(errno)))") }
                    offset += n
                }
                written.add(chunk.count, ordering: .relaxed)
            }
            guard close(fd) == 0 else {
                unlink(path)
                throw WriteError(description: "cannot write '\(path)': \(String(cString: strerror(errno)))")
            }
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
        return Written(url: url, size: written.load(ordering: .relaxed))
    }
}
