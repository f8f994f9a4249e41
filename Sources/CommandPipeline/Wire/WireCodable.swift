/// `Codable` for the wire values, through the same reader and writer the CLI uses, so
/// there is one definition of the format. Decoding checks invariants and reports the
/// first problem's field path in the `DecodingError`.
package protocol WireCodable: Codable, WireEncodable {
    /// Reads a value at the reader's path, recording every problem; `nil` when unusable.
    static func read(_ value: JSONValue, _ reader: inout WireReader) -> Self?
}

extension WireCodable {
    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        var reader = WireReader()
        let decoded = Self.read(value, &reader)
        if let issue = reader.issues.first {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(issue.path): \(issue.message)"))
        }
        guard let decoded else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "invalid \(Self.self)"))
        }
        self = decoded
    }

    public func encode(to encoder: any Encoder) throws { try wireValue.encode(to: encoder) }
}

extension PlannedCommand: WireCodable {
    package static func read(_ value: JSONValue, _ reader: inout WireReader) -> PlannedCommand? {
        switch WireFormat.command(from: value, position: 1) {
        case .success(let command): return command
        case .failure(let rejection):
            for issue in rejection.issues { reader.at(issue.path) { $0.fail(issue.message) } }
            return nil
        }
    }
}

extension ExecutionPlan: WireCodable {
    package static func read(_ value: JSONValue, _ reader: inout WireReader) -> ExecutionPlan? { WireFormat.plan(value, &reader) }
}

extension APICall: WireCodable {
    package static func read(_ value: JSONValue, _ reader: inout WireReader) -> APICall? { WireFormat.call(value, &reader) }
}

extension APIPart: WireCodable {
    package static func read(_ value: JSONValue, _ reader: inout WireReader) -> APIPart? { WireFormat.part(value, &reader) }
}

extension GenerationConfig: WireCodable {
    package static func read(_ value: JSONValue, _ reader: inout WireReader) -> GenerationConfig? { WireFormat.config(value, &reader) }
}

extension UploadTask: WireCodable {
    package static func read(_ value: JSONValue, _ reader: inout WireReader) -> UploadTask? { WireFormat.uploadTask(value, &reader) }
}

extension CachePlan: WireCodable {
    package static func read(_ value: JSONValue, _ reader: inout WireReader) -> CachePlan? { WireFormat.cachePlan(value, &reader) }
}

extension RateConstraint: WireCodable {
    package static func read(_ value: JSONValue, _ reader: inout WireReader) -> RateConstraint? { WireFormat.rateConstraint(value, &reader) }
}

extension TokenEstimate: WireCodable {
    package static func read(_ value: JSONValue, _ reader: inout WireReader) -> TokenEstimate? { WireFormat.tokenEstimate(value, &reader) }
}
