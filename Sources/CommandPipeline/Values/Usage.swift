/// Token usage, normalised across providers: `promptTokens` includes `cachedTokens`.
///
/// Counts come from servers, so they are pinned to `Limits.reportedTokens` when made
/// (a negative or absurd figure cannot flow on) and sums saturate instead of trapping.
public struct Usage: Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    public var cachedTokens: Int

    public init(promptTokens: Int = 0, completionTokens: Int = 0, totalTokens: Int? = nil, cachedTokens: Int = 0) {
        let range = Limits.reportedTokens
        self.promptTokens = range.clamp(promptTokens)
        self.completionTokens = range.clamp(completionTokens)
        self.totalTokens = range.clamp(totalTokens ?? promptTokens.addingSaturating(completionTokens))
        self.cachedTokens = range.clamp(cachedTokens)
    }

    public static let zero = Usage()

    public static func + (lhs: Usage, rhs: Usage) -> Usage {
        Usage(
            promptTokens: lhs.promptTokens.addingSaturating(rhs.promptTokens),
            completionTokens: lhs.completionTokens.addingSaturating(rhs.completionTokens),
            totalTokens: lhs.totalTokens.addingSaturating(rhs.totalTokens),
            cachedTokens: lhs.cachedTokens.addingSaturating(rhs.cachedTokens))
    }
}
