import CommandPipeline
import Foundation

/// The ids that already succeeded in an earlier results file, read as a stream.
enum Resume {
    static func succeededIDs(in path: String) throws(UsageError) -> Set<String> {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw UsageError(message: "cannot read --resume file '\(path)'; give an earlier results file (it may be empty)")
        }
        defer { try? handle.close() }
        var ids: Set<String> = []
        var splitter = JSONStreamSplitter()
        func take(_ piece: JSONStreamSplitter.Piece) {
            guard case .success(.object(let record)) = piece.parse(), record["status"] == "succeeded",
                case .string(let id)? = record["id"]
            else { return }
            ids.insert(id)
        }
        while true {
            let chunk = handle.readData(ofLength: 1 << 16)
            if chunk.isEmpty { break }
            splitter.feed([UInt8](chunk), take)
        }
        splitter.finish(take)
        return ids
    }
}
