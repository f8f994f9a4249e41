/// A command that ran to success: responses in call order, total usage, and telemetry.
public struct FinalizedCommand: Sendable, Hashable {
    public var id: String
    public var responses: [CallResponse]
    public var usage: Usage
    public var telemetry: Telemetry
    /// The command's metadata, untouched.
    public var metadata: JSONObject

    public init(id: String, responses: [CallResponse], usage: Usage, telemetry: Telemetry, metadata: JSONObject) {
        self.id = id
        self.responses = responses
        self.usage = usage
        self.telemetry = telemetry
        self.metadata = metadata
    }
}
