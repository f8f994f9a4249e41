import Foundation
import Synchronization

/// What a provider's answer says about its limits: OpenAI's `x-ratelimit-remaining-requests`,
/// `-tokens` and `x-ratelimit-reset-requests`, `-tokens` (`1s`, `6m0s`, `20ms`), Anthropic's
/// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{remaining,reset}` (RFC 3339
/// times), and `Retry-After` / `retry-after-ms` on any answer, read by the one retry-hint parser
/// (`RetryHint`, which the adapters use for a 429's `APIError.retryAfter`). Every number is
/// range-checked: only plain decimals count, counts are pinned to 0…10^12, waits to 0…`maxWait`.
///
/// The headers of every answer are read, successful ones too, so a deployment slows before it
/// meets a 429.
package struct HeaderLimits: Sendable, Hashable {
    public var remainingRequests: Int?
    public var remainingTokens: Int?
    /// Until the request (token) budget is whole again.
    public var resetRequests: Duration?
    public var resetTokens: Duration?
    public var retryAfter: Duration?

    public init(remainingRequests: Int? = nil, remainingTokens: Int? = nil, resetRequests: Duration? = nil, resetTokens: Duration? = nil, retryAfter: Duration? = nil) {
        self.remainingRequests = remainingRequests
        self.remainingTokens = remainingTokens
        self.resetRequests = resetRequests
        self.resetTokens = resetTokens
        self.retryAfter = retryAfter
    }

    public static let maxWait = Duration.seconds(60)
    static let maxCount = 1_000_000_000_000

    /// The limits in `headers` (names lowercased), nil when there are none.
    public static func parse(_ headers: [String: String], now: Date = Date()) -> HeaderLimits? {
        var limits = HeaderLimits()
        limits.remainingRequests = count(headers["x-ratelimit-remaining-requests"]) ?? count(headers["anthropic-ratelimit-requests-remaining"])
        limits.remainingTokens =
            count(headers["x-ratelimit-remaining-tokens"]) ?? count(headers["anthropic-ratelimit-tokens-remaining"])
            ?? [count(headers["anthropic-ratelimit-input-tokens-remaining"]), count(headers["anthropic-ratelimit-output-tokens-remaining"])].compactMap { $0 }.min()
        limits.resetRequests = goDuration(headers["x-ratelimit-reset-requests"]) ?? timestamp(headers["anthropic-ratelimit-requests-reset"], now: now)
        limits.resetTokens =
            goDuration(headers["x-ratelimit-reset-tokens"]) ?? timestamp(headers["anthropic-ratelimit-tokens-reset"], now: now)
            ?? timestamp(headers["anthropic-ratelimit-input-tokens-reset"], now: now)
        // `Retry-After` has one reader (`RetryHint`: every form, every cap); here only pinned to `maxWait`.
        limits.retryAfter = RetryHint.parse(headers, now: now).map { min($0, maxWait) }
        return limits == HeaderLimits() ? nil : limits
    }

    /// How long a deployment should send nothing more, with `othersInFlight` of its calls
    /// still on their way (each will spend one of the remaining requests). nil: go on.
    public func hold(othersInFlight: Int) -> Duration? {
        var hold: Duration? = retryAfter
        if let remaining = remainingRequests, remaining <= othersInFlight { hold = max(hold ?? .zero, resetRequests ?? .seconds(1)) }
        if let remaining = remainingTokens, remaining <= 0 { hold = max(hold ?? .zero, resetTokens ?? .seconds(1)) }
        return hold.map { min($0, Self.maxWait) }
    }

    /// A plain non-negative decimal, pinned to `maxCount`.
    static func count(_ text: String?) -> Int? {
        guard let text = text?.trimmingCharacters(in: .whitespaces), !text.isEmpty, text.utf8.count <= 40, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return text.utf8.count > 13 ? maxCount : min(Int(text) ?? maxCount, maxCount)
    }

    /// A Go-style duration (`1s`, `6m0s`, `1h2m3.5s`, `20ms`), pinned to `maxWait`.
    static func goDuration(_ text: String?) -> Duration? {
        guard let text, !text.isEmpty, text.utf8.count <= 40 else { return nil }
        var total = 0.0, number = "", unit = ""
        func flush() -> Bool {
            guard let value = Double(number), value.isFinite, value >= 0 else { return false }
            let scale: Double
            switch unit {
            case "h": scale = 3600
            case "m": scale = 60
            case "s": scale = 1
            case "ms": scale = 0.001
            case "us", "µs": scale = 0.000_001
            case "ns": scale = 0.000_000_001
            default: return false
            }
            total += value * scale
            number = ""
            unit = ""
            return true
        }
        for ch in text {
            if ch.isASCII && (ch.isNumber || ch == ".") {
                if !unit.isEmpty { guard flush() else { return nil } }
                number.append(ch)
            } else {
                guard !number.isEmpty else { return nil }
                unit.append(ch)
            }
        }
        guard !number.isEmpty, flush() else { return nil }
        return min(.milliseconds(Int(min(total, 3600) * 1000)), maxWait)
    }

    /// An RFC 3339 time, as the wait from `now` (0 when past), pinned to `maxWait`.
    static func timestamp(_ text: String?, now: Date) -> Duration? {
        guard let text, text.utf8.count <= 64 else { return nil }
        let formatter = ISO8601DateFormatter()
        var date = formatter.date(from: text)
        if date == nil {
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            date = formatter.date(from: text)
        }
        guard let date else { return nil }
        let seconds = max(0, min(date.timeIntervalSince(now), 3600))
        return min(.milliseconds(Int(seconds * 1000)), maxWait)
    }
}

/// Hands the headers of each HTTP answer of one deployment's adapter to its router: the HTTP
/// client holds the relay (`ProviderOptions.responseHeaders`) and reports every response head;
/// the router connects it to the deployment (`Router(…, relays:)`). A plain object, not a
/// task-local: binding a task-local around each call crashed the release build
/// (`swift_task_localValuePush`, Swift 6.3.1, with `NonisolatedNonsendingByDefault`).
package final class ResponseHeadersRelay: Sendable, Hashable {
    private let target = Mutex<(@Sendable ([String: String]) -> Void)?>(nil)

    public init() {}

    /// Called by the HTTP client with each answer's headers (names lowercased).
    public func report(_ headers: [String: String]) {
        if let target = target.withLock({ $0 }) { target(headers) }
    }

    func connect(_ receiver: @escaping @Sendable ([String: String]) -> Void) { target.withLock { $0 = receiver } }

    public static func == (lhs: ResponseHeadersRelay, rhs: ResponseHeadersRelay) -> Bool { lhs === rhs }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
