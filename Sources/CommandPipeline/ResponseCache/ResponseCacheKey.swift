import Foundation

/// The key of one call's answer in a `ResponseCache`: the SHA-256 of a canonical JSON document
/// holding everything that decides the answer.
///
///     {"config":…,"endpoint":"…","model":"…","parts":[…],"provider":"…","v":1}
///
/// - `config` is the call's whole config in its wire form (`GenerationConfig.wireValue`), so a
///   field added there is part of the key without a change here;
/// - `parts` are the effective parts (shared parts first), each in its wire form, except bytes:
///   an inline part is `{"type":"inline","mime_type":…,"sha256":…}`, and a local file (uploaded
///   or not) is `{"type":"file","mime_type":…,"sha256":…}` by its content, so the key does not
///   change with a provider's upload id or the file's name;
/// - every object's keys are sorted by their UTF-8 bytes, no white space, strings escaped as the
///   wire format writes them, and a number with an integral value written as an integer, so
///   `{"b":1,"a":2.0}` and `{"a":2,"b":1}` are the same document.
package struct ResponseCacheKey: Sendable, Hashable, CustomStringConvertible {
    /// 64 lowercase hex digits.
    public let digest: String

    public init(digest: String) { self.digest = digest }

    public var description: String { digest }

    /// The key of `request` sent to `provider` at `endpoint`. `fileDigests` gives the content
    /// digest (hex SHA-256) of the file in part `i`, for the parts that are local files.
    public init(provider: String, endpoint: String, request: GenerationRequest, fileDigests: [Int: String] = [:]) {
        var hasher = SHA256()
        hasher.update(Self.document(provider: provider, endpoint: endpoint, request: request, fileDigests: fileDigests))
        digest = hasher.finalizeHex()
    }

    /// The canonical document the digest is taken of.
    public static func document(provider: String, endpoint: String, request: GenerationRequest, fileDigests: [Int: String] = [:]) -> [UInt8] {
        var parts: [JSONValue] = []
        parts.reserveCapacity(request.parts.count)
        for (i, part) in request.parts.enumerated() {
            if let digest = fileDigests[i] {
                let mime: String
                switch part {
                case .fileRef(let ref): mime = ref.mimeType
                case .filePlaceholder(let p): mime = p.effectiveMimeType
                case .inline(let inline): mime = inline.mimeType
                default: mime = ""
                }
                parts.append(["type": "file", "mime_type": .string(mime), "sha256": .string(digest)])
            } else if case .inline(let inline) = part {
                parts.append(["type": "inline", "mime_type": .string(inline.mimeType), "sha256": .string(SHA256.hex(inline.data))])
            } else {
                parts.append(part.wireValue)
            }
        }
        let document: JSONValue = [
            "v": 1, "provider": .string(provider), "endpoint": .string(endpoint), "model": .string(request.model), "parts": .array(parts),
            "config": request.config.wireValue,
        ]
        var out: [UInt8] = []
        out.reserveCapacity(256)
        CanonicalJSON.write(document, to: &out)
        return out
    }
}

/// JSON written one way only: object keys sorted by their UTF-8 bytes, no white space, and a
/// double with an integral value (within ±2^53) written as an integer.
package enum CanonicalJSON {
    package static func write(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .double(let d) where d == d.rounded() && abs(d) <= 9_007_199_254_740_992:
            JSONSerializer.writeInt(Int(d), to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            let sorted = object.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            for (i, member) in sorted.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONSerializer.writeString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                write(member.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        default:
            JSONSerializer.write(value, to: &out)
        }
    }
}
