import CommandPipeline

/// The digest every result line carries as `input_hash` (FNV-1a, 64 bits, as 16 hex digits):
/// `run` writes it and `run --resume` matches on it, so a collected batch resumes like a run.
package enum InputDigest {
    package static func of(_ bytes: [UInt8]) -> String {
        var text: [UInt8] = []
        append(of: bytes, to: &text)
        return String(decoding: text, as: UTF8.self)
    }

    /// The 16 hex digits appended to `out` (written without making a string).
    package static func append(of bytes: [UInt8], to out: inout [UInt8]) {
        ResultWriter.hexDigits(value(of: bytes), to: &out)
    }

    /// The digest as a number (`ResultWriter.record(_:index:inputHash:to:)` writes it).
    package static func value(of bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
