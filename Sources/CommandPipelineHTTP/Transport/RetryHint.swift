import CommandPipeline
import Foundation

/// The transport's use of the one retry-hint parser (`RetryHint`, in the core so that the
/// router's `HeaderLimits` reads `Retry-After` with it too): what a failed answer's headers say.
extension RetryHint {
    /// `error` (mapped from an answer with `status`) with the server's hints applied: a
    /// `x-should-retry: true|false` (OpenAI's and Anthropic's servers) overrides whether it is
    /// retryable, and a retryable error without a hint of its own (Gemini's `RetryInfo`) takes
    /// the headers' (`parse`). A redirect stays what it is.
    static func apply(to error: APIError, status: Int, headers: [String: String], now: Date = Date()) -> APIError {
        guard status >= 400 else { return error }
        var error = error
        switch headers["x-should-retry"]?.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true": error.retryable = true
        case "false": error.retryable = false
        default: break
        }
        if error.retryable, error.retryAfter == nil { error.retryAfter = parse(headers, now: now) }
        return error
    }
}
