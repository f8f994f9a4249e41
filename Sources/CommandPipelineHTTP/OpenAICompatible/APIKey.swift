/// An API key that cannot leak by accident: printing, interpolating or dumping it shows
/// `<redacted>`. Read it from the environment; never accept it as a flag.
public struct APIKey: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    let value: String

    public init(_ value: String) { self.value = value }

    /// The key in the environment variable `name`, if set and not empty.
    public static func fromEnvironment(_ name: String, in environment: [String: String]) -> APIKey? {
        guard let value = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
        return APIKey(value)
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }

    /// `text` with every occurrence of the key replaced, for server messages that echo it.
    func redact(_ text: String) -> String {
        value.count >= 4 ? text.replacingOccurrences(of: value, with: "<redacted>") : text
    }
}
