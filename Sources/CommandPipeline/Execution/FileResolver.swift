#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Turns a path named in a command into an opened file, optionally confined to a root
/// directory. With a root, absolute paths outside it, `..` escapes and symbolic links
/// leading out are refused — checked on the descriptor actually opened, not on the name,
/// so swapping a link during the run cannot escape. Only regular files are opened.
package struct FileResolver: Sendable, Hashable {
    public var baseDirectory: String
    public var confined: Bool
    /// The largest file the engine opens.
    public var maximumFileBytes: Int

    /// 2 GiB: the largest file any supported provider accepts.
    public static let defaultMaximumFileBytes = 2 << 30

    /// Paths resolve against the working directory, unconfined.
    public init(maximumFileBytes: Int = FileResolver.defaultMaximumFileBytes) {
        self.baseDirectory = FileManager.default.currentDirectoryPath
        self.confined = false
        self.maximumFileBytes = maximumFileBytes
    }

    /// Paths resolve against `root` and may not leave it.
    public init(confinedTo root: String, maximumFileBytes: Int = FileResolver.defaultMaximumFileBytes) {
        self.baseDirectory = URL(fileURLWithPath: root).standardizedFileURL.path
        self.confined = true
        self.maximumFileBytes = maximumFileBytes
    }

    /// The absolute path, or a message saying why the path is refused. The name alone is
    /// checked here; `open` checks what is really opened.
    package func resolve(_ path: String) -> Result<String, Refusal> {
        guard !path.isEmpty else { return .failure(Refusal(message: "file path is empty")) }
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : URL(fileURLWithPath: baseDirectory).appendingPathComponent(path)
        let standardized = url.standardizedFileURL.path
        guard confined else { return .success(standardized) }
        guard Self.isInside(standardized, baseDirectory) || Self.isInside(standardized, rootRealPath) else {
            return .failure(escape(path))
        }
        return .success(standardized)
    }

    /// Opens the file `path` names: refused (the command is at fault) when it leaves the root
    /// or is not a regular file; unreadable when it is missing or denied.
    public func open(_ path: String) -> Result<OpenedFile, OpenedFile.Failure> {
        let absolute: String
        switch resolve(path) {
        case .success(let resolved): absolute = resolved
        case .failure(let refusal): return .failure(.refused(refusal.message))
        }
        let file: OpenedFile
        switch OpenedFile.open(absolute, maximumBytes: maximumFileBytes) {
        case .success(let opened): file = opened
        case .failure(let failure): return .failure(failure)
        }
        if confined && !Self.isInside(file.realPath, rootRealPath) {
            return .failure(.refused(escape(path).message))
        }
        return .success(file)
    }

    /// Deletes an uploaded ephemeral file: only with a files root, only the very file that was
    /// read (same device and inode, still a regular file inside the root), through a descriptor
    /// of its directory so a swapped link cannot redirect the deletion.
    package func removeEphemeral(_ file: OpenedFile) -> Result<Void, Refusal> {
        guard confined else {
            return .failure(Refusal(message: "ephemeral file '\(file.path)' was kept: files are deleted only inside an explicit files root (--files-root)"))
        }
        let real = URL(fileURLWithPath: file.realPath)
        let name = real.lastPathComponent
        let directory = openDirectory(real.deletingLastPathComponent().path)
        guard directory >= 0 else { return .failure(Refusal(message: "ephemeral file '\(file.path)' was kept: its directory cannot be opened")) }
        defer { close(directory) }
        guard let directoryPath = OpenedFile.descriptorPath(directory), Self.isInside(directoryPath, rootRealPath) else {
            return .failure(Refusal(message: "ephemeral file '\(file.path)' was kept: it is no longer inside the files root"))
        }
        var info = stat()
        guard fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) == S_IFREG,
            UInt64(truncatingIfNeeded: info.st_dev) == file.identity.device, UInt64(truncatingIfNeeded: info.st_ino) == file.identity.inode
        else {
            return .failure(Refusal(message: "ephemeral file '\(file.path)' was kept: it was replaced after it was read"))
        }
        guard unlinkat(directory, name, 0) == 0 else {
            return .failure(Refusal(message: "ephemeral file '\(file.path)' was kept: \(String(cString: strerror(errno)))"))
        }
        return .success(())
    }

    /// Why a path was refused.
    package struct Refusal: Error, Sendable, Hashable {
        public var message: String
    }

    private func escape(_ path: String) -> Refusal {
        Refusal(message: "file path '\(path)' leaves the files root '\(baseDirectory)'; name a file inside it")
    }

    private var rootRealPath: String { URL(fileURLWithPath: baseDirectory).resolvingSymlinksInPath().standardizedFileURL.path }

    private static func isInside(_ path: String, _ root: String) -> Bool {
        path == root || path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }

    private func openDirectory(_ path: String) -> Int32 {
        #if canImport(Glibc)
        Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        #else
        Darwin.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        #endif
    }
}
