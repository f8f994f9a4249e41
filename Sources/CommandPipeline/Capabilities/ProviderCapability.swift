import Foundation

/// The capabilities a provider can have, as named on the wire and in `--mock-capabilities`.
public enum ProviderCapability: String, Sendable, Hashable, CaseIterable, Codable, Comparable {
    case generation
    case uploads
    case caching
    case streaming
    case tokenCounting = "token_counting"
    case batch

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// The capabilities `provider` really has, read from the accessors the engine uses; batch
    /// as this package's adapters and the mock say (`BatchOffering`): for a provider of one's
    /// own, `provider.batch` (`CommandPipelineBatch`) tells.
    public static func probe(_ provider: any GenerationCapability) -> Set<ProviderCapability> {
        var found: Set<ProviderCapability> = [.generation]
        if provider.uploads != nil { found.insert(.uploads) }
        if provider.caching != nil { found.insert(.caching) }
        if provider.streaming != nil { found.insert(.streaming) }
        if provider.tokenCounting != nil { found.insert(.tokenCounting) }
        if let offering = provider as? any BatchOffering, offering.offersBatch { found.insert(.batch) }
        return found
    }

    /// Parses a comma list such as `generation,uploads`; `nil` names the unknown entry.
    public static func parseList(_ text: String) -> Result<Set<ProviderCapability>, APIError> {
        var set: Set<ProviderCapability> = []
        for raw in text.split(separator: ",", omittingEmptySubsequences: true) {
            let name = raw.trimmingCharacters(in: .whitespaces)
            guard let capability = ProviderCapability(rawValue: name) else {
                let known = allCases.map(\.rawValue).joined(separator: ",")
                return .failure(APIError(.invalidCommand, "unknown capability '\(name)'; known: \(known)"))
            }
            set.insert(capability)
        }
        return .success(set)
    }
}
