#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CommandPipeline
import Foundation
import Synchronization

/// A request body on disk: created exclusively in the temporary directory, readable by its
/// owner only (mode 0600, since it holds a private file's bytes and may outlive a crash),
/// filled in chunks — an uploaded file is copied through the engine's descriptor, never held
/// whole in memory — and removed by the caller after the request (or here, on any failure).
/// A failed write is an error, never a short body.
final class PrivateTemporaryFile: Sendable {
    let url: URL
    private let descriptor: Int32
    private let written = Atomic<Int>(0)

    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    /// Creates `<tmp>/commandpipeline-<label>-<uuid>`.
    init(label: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("commandpipeline-\(label)-\(UUID().uuidString)")
        #if canImport(Glibc)
        descriptor = Glibc.open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        #else
        descriptor = Darwin.open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        #endif
        guard descriptor >= 0 else { throw WriteError(description: "cannot create '\(url.path)': \(String(cString: strerror(errno)))") }
    }

    /// Bytes written so far.
    var size: Int { written.load(ordering: .relaxed) }

    func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append($0) }
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw WriteError(description: "cannot write '\(url.path)': \(String(cString: strerror(errno)))") }
            offset += n
        }
        written.add(bytes.count, ordering: .relaxed)
    }

    /// Copies `file` in, chunk by chunk, off the concurrency pool.
    func append(_ file: OpenedFile) async throws {
        try await file.forEachChunk { chunk in try self.append(chunk) }
    }

    /// An upload's whole body (`head`, `file` copied through its descriptor, `tail`) in a private
    /// temporary file, for URLSession, which uploads from a file (the own transport streams
    /// instead); the caller removes it. A file that changed size since it was opened fails.
    static func body(head: [UInt8], file: OpenedFile, tail: [UInt8]) async throws -> URL {
        try await write(label: "upload") { body in
            try body.append(head)
            try await body.append(file)
            try body.append(tail)
        }.url
    }

    /// Fills the file with `body`, closes it and returns its URL; on any failure removes it.
    static func write(label: String, _ body: (PrivateTemporaryFile) async throws -> Void) async throws -> PrivateTemporaryFile {
        let file = try PrivateTemporaryFile(label: label)
        do {
            try await body(file)
            guard close(file.descriptor) == 0 else {
                throw WriteError(description: "cannot write '\(file.url.path)': \(String(cString: strerror(errno)))")
            }
        } catch {
            close(file.descriptor)
            unlink(file.url.path)
            throw error
        }
        return file
    }
}
