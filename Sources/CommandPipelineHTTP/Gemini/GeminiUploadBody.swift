import CommandPipeline
import Foundation

/// The bytes of a Gemini upload, copied through the engine's descriptor into a private
/// temporary file (`PrivateTemporaryFile`), so the request streams them from disk and a
/// large file is never whole in memory. The caller removes the file.
enum GeminiUploadBody {
    struct Written: Sendable {
        var url: URL
        var size: Int
    }

    static func write(_ file: OpenedFile) async throws -> Written {
        let body = try await PrivateTemporaryFile.write(label: "gemini-upload") { try await $0.append(file) }
        return Written(url: body.url, size: body.size)
    }
}
