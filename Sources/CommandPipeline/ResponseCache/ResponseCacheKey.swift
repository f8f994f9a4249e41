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

    /// The canonical document the digest is taken of. Written straight into bytes, its fixed
    /// keys in their sorted order (no `JSONValue` tree of the whole document, no sort): a warm
    /// run builds one per call. Only values that are JSON trees already (`response_format`,
    /// `provider_options`, tools, a part other than text) go through `CanonicalJSON`.
    public static func document(provider: String, endpoint: String, request: GenerationRequest, fileDigests: [Int: String] = [:]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(192 &+ request.model.utf8.count &+ endpoint.utf8.count)
        JSONSerializer.raw(#"{"config":"#, to: &out)
        writeConfig(request.config, to: &out)
        JSONSerializer.raw(#","endpoint":"#, to: &out)
        JSONSerializer.writeString(endpoint, to: &out)
        JSONSerializer.raw(#","model":"#, to: &out)
        JSONSerializer.writeString(request.model, to: &out)
        JSONSerializer.raw(#","parts":["#, to: &out)
        for (i, part) in request.parts.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            if let digest = fileDigests[i] {
                let mime: String
                switch part {
                case .fileRef(let ref): mime = ref.mimeType
                case .filePlaceholder(let p): mime = p.effectiveMimeType
                case .inline(let inline): mime = inline.mimeType
                default: mime = ""
                }
                writeByDigest(type: "file", mime: mime, digest: digest, to: &out)
            } else {
                switch part {
                case .text(let text):
                    JSONSerializer.raw(#"{"text":"#, to: &out)
                    JSONSerializer.writeString(text, to: &out)
                    JSONSerializer.raw(#","type":"text"}"#, to: &out)
                case .inline(let inline):
                    writeByDigest(type: "inline", mime: inline.mimeType, digest: SHA256.hex(inline.data), to: &out)
                default:
                    CanonicalJSON.write(part.wireValue, to: &out)
                }
            }
        }
        JSONSerializer.raw(#"],"provider":"#, to: &out)
        JSONSerializer.writeString(provider, to: &out)
        JSONSerializer.raw(#","v":1}"#, to: &out)
        return out
    }

    /// `{"mime_type":…,"sha256":…,"type":…}`: a part keyed by its bytes' digest.
    private static func writeByDigest(type: String, mime: String, digest: String, to out: inout [UInt8]) {
        JSONSerializer.raw(#"{"mime_type":"#, to: &out)
        JSONSerializer.writeString(mime, to: &out)
        JSONSerializer.raw(#","sha256":"#, to: &out)
        JSONSerializer.writeString(digest, to: &out)
        JSONSerializer.raw(#","type":"#, to: &out)
        JSONSerializer.writeString(type, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// `config.wireValue` in canonical form, its members written in their sorted order (a
    /// test checks this against `CanonicalJSON.write(config.wireValue)` for every field).
    static func writeConfig(_ config: GenerationConfig, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        func member(_ name: StaticString) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            name.withUTF8Buffer { out.append(contentsOf: $0) }
            JSONSerializer.raw(#"":"#, to: &out)
        }
        // Sorted by UTF-8 bytes: max_repairs < max_tokens < provider_options < response_format
        // < seed < stop < system_instruction < temperature < tool_choice < tools < top_p.
        if let maxRepairs = config.maxRepairs {
            member("max_repairs")
            JSONSerializer.writeInt(maxRepairs, to: &out)
        }
        if let maxTokens = config.maxTokens {
            member("max_tokens")
            JSONSerializer.writeInt(maxTokens, to: &out)
        }
        if !config.providerOptions.isEmpty {
            member("provider_options")
            CanonicalJSON.write(.object(config.providerOptions), to: &out)
        }
        if let responseFormat = config.responseFormat {
            member("response_format")
            CanonicalJSON.write(responseFormat, to: &out)
        }
        if let seed = config.seed {
            member("seed")
            JSONSerializer.writeInt(seed, to: &out)
        }
        if let stop = config.stop {
            member("stop")
            out.append(UInt8(ascii: "["))
            for (i, s) in stop.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONSerializer.writeString(s, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        if let system = config.systemInstruction {
            member("system_instruction")
            JSONSerializer.writeString(system, to: &out)
        }
        if let temperature = config.temperature {
            member("temperature")
            CanonicalJSON.write(.double(temperature), to: &out)
        }
        if let toolChoice = config.toolChoice {
            member("tool_choice")
            CanonicalJSON.write(toolChoice.wireValue, to: &out)
        }
        if let tools = config.tools {
            member("tools")
            CanonicalJSON.write(.array(tools.map(\.wireValue)), to: &out)
        }
        if let topP = config.topP {
            member("top_p")
            CanonicalJSON.write(.double(topP), to: &out)
        }
        out.append(UInt8(ascii: "}"))
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
            let members = object.members
            // Most objects are written in order already: no sorted copy for them.
            let inOrder = members.indices.dropFirst().allSatisfy { !members[$0].key.utf8.lexicographicallyPrecedes(members[$0 - 1].key.utf8) }
            let sorted = inOrder ? members : members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
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
