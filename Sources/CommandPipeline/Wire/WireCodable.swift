/// `Codable` for the wire values, through the same reader and writer the CLI uses, so
/// there is one definition of the format. Decoding checks invariants and reports the
/// first problem's field path in the `DecodingError`.
protocol WireDecodable {
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> Self?
}

extension WireDecodable where Self: WireEncodable {
    static func decodeWire(from decoder: any Decoder) throws -> Self {
        let value = try JSONValue(from: decoder)
        var reader = WireReader()
        let decoded = read(value, &reader)
        if let issue = reader.issues.first {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(issue.path): \(issue.message)"))
        }
        guard let decoded else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "invalid \(Self.self)"))
        }
        return decoded
    }
}

extension PlannedCommand: Codable, WireDecodable {
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> PlannedCommand? {
        switch WireFormat.command(from: value, position: 1) {
        case .success(let command): return command
        case .failure(let rejection):
            for issue in rejection.issues { reader.at(issue.path) { $0.fail(issue.message) } }
            return nil
        }
    }
    public init(from decoder: any Decoder) throws { self = try Self.decodeWire(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

extension ExecutionPlan: Codable, WireDecodable {
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> ExecutionPlan? { WireFormat.plan(value, &reader) }
    public init(from decoder: any Decoder) throws { self = try Self.decodeWire(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

extension APICall: Codable, WireDecodable {
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> APICall? { WireFormat.call(value, &reader) }
    public init(from decoder: any Decoder) throws { self = try Self.decodeWire(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

extension APIPart: Codable, WireDecodable {
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> APIPart? { WireFormat.part(value, &reader) }
    public init(from decoder: any Decoder) throws { self = try Self.decodeWire(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

extension GenerationConfig: Codable, WireDecodable {
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> GenerationConfig? { WireFormat.config(value, &reader) }
    public init(from decoder: any Decoder) throws { self = try Self.decodeWire(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

extension UploadTask: Codable, WireDecodable {
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> UploadTask? { WireFormat.uploadTask(value, &reader) }
    public init(from decoder: any Decoder) throws { self = try Self.decodeWire(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

extension CachePlan: Codable, WireDecodable {
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> CachePlan? { WireFormat.cachePlan(value, &reader) }
    public init(from decoder: any Decoder) throws { self = try Self.decodeWire(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

extension RateConstraint: Codable, WireDecodable {
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> RateConstraint? { WireFormat.rateConstraint(value, &reader) }
    public init(from decoder: any Decoder) throws { self = try Self.decodeWire(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

extension TokenEstimate: Codable, WireDecodable {
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> TokenEstimate? { WireFormat.tokenEstimate(value, &reader) }
    public init(from decoder: any Decoder) throws { self = try Self.decodeWire(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

/// Results are written, not read back, by the engine; they encode through their wire form.
extension FinalizedCommand: Encodable {
    public func encode(to encoder: any Encoder) throws { try ResultRecord.succeeded(self, index: 0).encode(to: encoder) }
}

extension Usage: Encodable {
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

extension Telemetry: Encodable {
    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}
