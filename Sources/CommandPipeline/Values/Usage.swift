/// Token usage, normalised across providers: `promptTokens` includes `cachedTokens`.
public struct Usage: Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    public var cachedTokens: Int

    public init(promptTokens: Int = 0, completionTokens: Int = 0, totalTokens: Int? = nil, cachedTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens ?? (promptTokens + completionTokens)
        self.cachedTokens = cachedTokens
    }

    public static let zero = Usage()

    public static func + (lhs: Usage, rhs: Usage) -> Usage {
        Usage(
            promptTokens: lhs.promptTokens + rhs.promptTokens,
            completionTokens: lhs.completionTokens + rhs.completionTokens,
            totalTokens: lhs.totalTokens + rhs.totalTokens,
            cachedTokens: lhs.cachedTokens + rhs.cachedTokens)
    }
}
