import Foundation

/// The one reader of a server's "retry after" hint, for every adapter, batch client, the
/// webhook sink (through `CommandPipelineHTTP`'s `RetryHint.apply`) and the router
/// (`HeaderLimits`, which reads it from every answer of a deployment). Headers, first usable one wins:
///
/// - `retry-after-ms` (milliseconds, OpenAI and Anthropic),
/// - `retry-after` (seconds, or an HTTP date: IMF-fixdate, RFC 850 or asctime, RFC 9110 §10.2.3),
/// - `llm_provider-retry-after-ms` and `llm_provider-retry-after`: the upstream provider's hint
///   that gateways such as LiteLLM forward under a prefix (the gateway's own hint comes first).
///
/// Values are read defensively: only plain decimal numbers count (no `inf`, `nan`, `1e20`, hex
/// or sign), a date in the past is zero, an unusable value is skipped for the next header, and
/// everything is capped once, at `cap`. The engine caps hints further (`RetryPolicy.maxRetryAfter`,
/// 60 s by default); this cap only makes sure no value can overflow a `Duration` or an `Int`.
package enum RetryHint {
    /// The longest hint kept from any server.
    package static let cap: Duration = .seconds(3600)

    /// The header names read, in order, each with the unit of a plain number.
    package static let headers: [(name: String, milliseconds: Bool)] = [
        ("retry-after-ms", true), ("retry-after", false), ("llm_provider-retry-after-ms", true), ("llm_provider-retry-after", false),
    ]

    /// The hint in `headers` (names lowercased), if any header holds a usable one.
    package static func parse(_ headers: [String: String], now: Date = Date()) -> Duration? {
        for (name, milliseconds) in Self.headers {
            guard let value = headers[name] else { continue }
            if let number = decimal(value) { return capped(seconds: milliseconds ? number / 1000 : number) }
            if !milliseconds, let date = httpDate(value) { return capped(seconds: max(0, date.timeIntervalSince(now))) }
        }
        return nil
    }

    /// A non-negative finite number of seconds as a `Duration` (milliseconds), at most `cap`;
    /// nil for a negative, infinite or NaN value. Also for hints read from a body (Gemini's `RetryInfo`).
    package static func capped(seconds: Double) -> Duration? {
        guard seconds.isFinite, seconds >= 0 else { return nil }
        let limit = Double(cap.components.seconds)
        return .milliseconds(Int((min(seconds, limit) * 1000).rounded()))
    }

    /// `text` as a number if it is digits with an optional fraction (`2`, `1.5`), else nil.
    package static func decimal(_ text: String) -> Double? {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard !parts[0].isEmpty, parts.count == 1 || !parts[1].isEmpty,
            parts.allSatisfy({ $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } })
        else { return nil }
        return Double(text)
    }

    /// An HTTP date in any of the three forms a recipient must accept.
    package static func httpDate(_ text: String) -> Date? {
        // asctime pads a one-digit day with a second space.
        let text = text.split(separator: " ").joined(separator: " ")
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }
}
