import CommandPipeline
import Foundation

/// The commands a batch is made from, as `submit` reads them: split into values as they
/// arrive and hashed as they arrive, never held whole — like `run`, memory grows with the
/// commands read (each at most `JSONStreamSplitter.maximumValueBytes`), not with the bytes:
/// garbage keeps only a preview, so `/dev/zero` on stdin stays flat.
public struct BatchInput: Sendable {
    var pieces: [JSONStreamSplitter.Piece] = []
    /// The SHA-256 of every byte read: a re-run of `submit` must give the same input.
    public private(set) var sha256: String

    /// Commands from bytes: a stream of JSON values, as `run` reads stdin.
    public init(_ bytes: [UInt8]) {
        var digest = SHA256()
        digest.update(bytes)
        var splitter = JSONStreamSplitter()
        var pieces: [JSONStreamSplitter.Piece] = []
        splitter.feed(bytes) { pieces.append($0) }
        splitter.finish { pieces.append($0) }
        self.pieces = pieces
        sha256 = digest.finalizeHex()
    }

    private init(pieces: [JSONStreamSplitter.Piece], sha256: String) {
        self.pieces = pieces
        self.sha256 = sha256
    }

    /// Commands read from `fd` to its end; nil with `errno` set when a read fails.
    public static func read(fd: Int32) -> BatchInput? {
        var digest = SHA256()
        var splitter = JSONStreamSplitter()
        var pieces: [JSONStreamSplitter.Piece] = []
        let size = 1 << 16
        let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: size)
        defer { chunk.deallocate() }
        while true {
            let n = Foundation.read(fd, chunk.baseAddress!, size)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            let bytes = UnsafeBufferPointer(rebasing: chunk[0..<n])
            digest.update(bytes)
            splitter.feed(bytes) { pieces.append($0) }
        }
        splitter.finish { pieces.append($0) }
        return BatchInput(pieces: pieces, sha256: digest.finalizeHex())
    }
}
