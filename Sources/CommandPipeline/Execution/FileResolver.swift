import Foundation

/// Turns a path named in a command into an absolute path, optionally confined to a root
/// directory: with `confined`, absolute paths outside the root, `..` escapes and
/// symbolic links leading out are rejected before anything is read.
public struct FileResolver: Sendable, Hashable {
    public var baseDirectory: String
    public var confined: Bool

    /// Paths resolve against the working directory, unconfined.
    public init() {
        self.baseDirectory = FileManager.default.currentDirectoryPath
        self.confined = false
    }

    /// Paths resolve against `root` and may not leave it.
    public init(confinedTo root: String) {
        self.baseDirectory = URL(fileURLWithPath: root).standardizedFileURL.path
        self.confined = true
    }

    /// The absolute path, or a message saying why the path is refused.
    public func resolve(_ path: String) -> Result<String, Refusal> {
        guard !path.isEmpty else { return .failure(Refusal(message: "file path is empty")) }
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : URL(fileURLWithPath: baseDirectory).appendingPathComponent(path)
        let standardized = url.standardizedFileURL.path
        guard confined else { return .success(standardized) }
        let root = Self.realPath(baseDirectory)
        let real = Self.realPath(standardized)
        guard Self.isInside(standardized, baseDirectory) || Self.isInside(standardized, root),
            Self.isInside(real, root)
        else {
            return .failure(Refusal(message: "file path '\(path)' leaves the files root '\(baseDirectory)'; name a file inside it"))
        }
        return .success(standardized)
    }

    /// Why a path was refused.
    public struct Refusal: Error, Sendable, Hashable {
        public var message: String
    }

    private static func isInside(_ path: String, _ root: String) -> Bool {
        path == root || path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }

    /// The path with every symbolic link resolved; for a missing file, its nearest existing ancestor's.
    private static func realPath(_ path: String) -> String {
        var url = URL(fileURLWithPath: path)
        var tail: [String] = []
        while !FileManager.default.fileExists(atPath: url.path), url.path != "/" {
            tail.insert(url.lastPathComponent, at: 0)
            url.deleteLastPathComponent()
        }
        var resolved = url.resolvingSymlinksInPath()
        for component in tail { resolved.appendPathComponent(component) }
        return resolved.standardizedFileURL.path
    }
}
