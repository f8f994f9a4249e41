/// Token usage, normalised across providers: `promptTokens` includes `cachedTokens` (read
/// from a cache) and `cacheCreationTokens` (written to a cache, billed at a premium by
/// providers that report it, such as Anthropic).
///
/// Counts come from servers, so they are pinned to `Limits.reportedTokens` when made
/// (a negative or absurd figure cannot flow on) and sums saturate instead of trapping.
public struct Usage: Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    public var cachedTokens: Int
    /// Prompt tokens this call wrote to a provider cache; 0 when none or not reported.
    public var cacheCreationTokens: Int
    /// Of `cacheCreationTokens`, those written for a long (one-hour) lifetime, which Anthropic
    /// bills above the five-minute write price (`ModelPrices.cacheWriteLong`); 0 when none or
    /// not reported. Priced only: not part of the wire format's `usage`.
    public var cacheCreationLongTokens: Int
    /// Calls whose provider did not report their usage (a stream that ended without it, an
    /// answer without `usage`): their tokens are in none of the counts above, which are then a
    /// lower bound, and the wire format writes the counts as `null` (`Design/decisions/0013-unknown-usage.md`). 0 when
    /// every call reported; 1 in a single call's `Usage.unreported`.
    public var unreportedCalls: Int

    public init(
        promptTokens: Int = 0, completionTokens: Int = 0, totalTokens: Int? = nil, cachedTokens: Int = 0, cacheCreationTokens: Int = 0,
        cacheCreationLongTokens: Int = 0, unreportedCalls: Int = 0
    ) {
        let range = Limits.reportedTokens
        self.promptTokens = range.clamp(promptTokens)
        self.completionTokens = range.clamp(completionTokens)
        self.totalTokens = range.clamp(totalTokens ?? promptTokens.addingSaturating(completionTokens))
        self.cachedTokens = range.clamp(cachedTokens)
        self.cacheCreationTokens = range.clamp(cacheCreationTokens)
        self.cacheCreationLongTokens = min(range.clamp(cacheCreationLongTokens), self.cacheCreationTokens)
        self.unreportedCalls = max(0, unreportedCalls)
    }

    public static let zero = Usage()

    /// The usage of one call whose provider did not say what it used: unknown, not zero.
    public static let unreported = Usage(unreportedCalls: 1)

    /// Whether every call behind this usage reported it (the counts are exact, not a lower bound).
    public var isReported: Bool { unreportedCalls == 0 }

    public static func + (lhs: Usage, rhs: Usage) -> Usage {
        Usage(
            promptTokens: lhs.promptTokens.addingSaturating(rhs.promptTokens),
            completionTokens: lhs.completionTokens.addingSaturating(rhs.completionTokens),
            totalTokens: lhs.totalTokens.addingSaturating(rhs.totalTokens),
            cachedTokens: lhs.cachedTokens.addingSaturating(rhs.cachedTokens),
            cacheCreationTokens: lhs.cacheCreationTokens.addingSaturating(rhs.cacheCreationTokens),
            cacheCreationLongTokens: lhs.cacheCreationLongTokens.addingSaturating(rhs.cacheCreationLongTokens),
            unreportedCalls: lhs.unreportedCalls.addingSaturating(rhs.unreportedCalls))
    }
}
