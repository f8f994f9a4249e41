import Synchronization

/// Content digests (hex SHA-256) of local files, for response cache keys: a file is read once
/// per engine while it stays the same file (device, inode, size and modification time), however
/// many calls name it.
package final class FileDigests: Sendable {
    private let known = Mutex<[OpenedFile.Identity: String]>([:])
    /// Files remembered at most; past it the memory starts again (a digest is only recomputed).
    private static let limit = 65_536

    package init() {}

    /// The digest of the file at `path` (through `resolver`, as uploads open it); nil when it
    /// cannot be opened or read.
    package func digest(ofPath path: String, resolver: FileResolver) async -> String? {
        guard case .success(let resolved) = resolver.resolve(path), case .success(let file) = resolver.open(resolved) else { return nil }
        if let digest = known.withLock({ $0[file.identity] }) { return digest }
        let hasher = Mutex(SHA256())
        do {
            try await file.forEachChunk { chunk in hasher.withLock { $0.update(chunk) } }
        } catch {
            return nil
        }
        let digest = hasher.withLock { $0 }.finalizeHex()
        known.withLock {
            if $0.count >= Self.limit { $0.removeAll() }
            $0[file.identity] = digest
        }
        return digest
    }
}
