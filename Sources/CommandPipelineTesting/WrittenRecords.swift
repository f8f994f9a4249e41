import CommandPipeline

/// Result records as the CLI writes them, read back with the package's one JSON reader, for
/// assertions in tests (the engine itself only ever writes them).
public enum WrittenRecords {
    /// The record of `outcome` at input position `index`.
    public static func record(_ outcome: CommandOutcome, index: Int) -> JSONValue {
        read { ResultWriter.record(outcome, index: index, to: &$0) }
    }

    /// The record of a command that succeeded.
    public static func succeeded(_ command: FinalizedCommand, index: Int) -> JSONValue {
        read { ResultWriter.succeeded(command, index: index, to: &$0) }
    }

    /// Usage as records write it.
    public static func usage(_ usage: Usage) -> String {
        var out: [UInt8] = []
        ResultWriter.usage(usage, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses bytes a writer produced (always valid JSON).
    public static func read(_ write: (inout [UInt8]) -> Void) -> JSONValue {
        var out: [UInt8] = []
        write(&out)
        do throws(JSONParser.SyntaxError) {
            return try JSONParser.parse(out)
        } catch {
            preconditionFailure("the writer produced invalid JSON at \(error.offset): \(error.message)")
        }
    }
}
