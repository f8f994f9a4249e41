import Foundation

/// Why a command, or one part of it, failed. Every public entry point returns this
/// inside a `Result`, so a caller can switch on `kind` and read where it happened.
/// It says what went wrong and nothing more: what a failed command left (partial responses,
/// failed calls, telemetry) sits beside it in `CommandOutcome`.
public struct APIError: Error, Sendable, Hashable {
    /// The error taxonomy of the wire format; see `Design/errors.md`.
    public enum Kind: String, Sendable, Hashable, CaseIterable, Codable {
        /// The command itself is wrong: `path` says where.
        case invalidCommand = "invalid_command"
        /// The plan needs something the provider cannot do (e.g. a required upload).
        case capabilityMissing = "capability_missing"
        case uploadFailed = "upload_failed"
        case cacheFailed = "cache_failed"
        /// The provider answered with an error.
        case providerError = "provider_error"
        case rateLimited = "rate_limited"
        case timeout
        case cancelled
        /// Not started: the run's spending limit (`--max-cost`, `CostLedger.limit`) would be passed.
        case budgetExceeded = "budget_exceeded"
        /// The answer is not the JSON its `response_format` asks for, after the last repair:
        /// `path` is the JSON path of the first violation in the answer (`$.items[0].name`).
        case invalidOutput = "invalid_output"
        /// A bug in the engine: please report it.
        case `internal`
    }

    public var kind: Kind
    /// What went wrong and, where it helps, how to fix it.
    public var message: String
    /// Where in the command the fault is (`plan.calls[0].parts[1]`), when the input is at fault.
    public var path: String?
    /// The provider that raised it, if any.
    public var provider: String?
    /// Whether trying the same thing again may succeed.
    public var retryable: Bool
    /// The provider's own code, e.g. `unavailable`, `insufficient_quota`.
    public var code: String?
    /// A delay the provider asked for before retrying.
    public var retryAfter: Duration?
    /// The error this one wraps (a transport or decoding error), when there is one.
    public var underlying: (any Error & Sendable)? {
        get { rare?.value.underlying }
        set { rare = Rare.boxed(underlying: newValue, billedUsage: billedUsage) }
    }
    /// Usage the failed attempt's answer reported before it failed (a stream that broke after
    /// its usage came, an answer refused after it was generated): what the provider billed for
    /// it, priced on the command (`CostPart.Request.failedAttempt`). nil: nothing was reported.
    public var billedUsage: Usage? {
        get { rare?.value.billedUsage }
        set { rare = Rare.boxed(underlying: underlying, billedUsage: newValue) }
    }

    /// The fields most errors leave empty, behind one immutable box (nil when both are). An
    /// error is returned through every async frame of a command (typed throws, `Result`), and
    /// inline they made it 169 bytes, each move a `memmove` call: some 19 per command on the
    /// mock (`PipelineBench --scenario overhead`, 2026-12-07). Boxed, the error is 112 bytes,
    /// moved inline.
    private struct Rare: Sendable {
        var underlying: (any Error & Sendable)?
        var billedUsage: Usage?

        static func boxed(underlying: (any Error & Sendable)?, billedUsage: Usage?) -> Box<Rare>? {
            underlying == nil && billedUsage == nil ? nil : Box(Rare(underlying: underlying, billedUsage: billedUsage))
        }
    }

    private var rare: Box<Rare>?
    public init(
        _ kind: Kind, _ message: String, path: String? = nil, provider: String? = nil,
        retryable: Bool = false, code: String? = nil, retryAfter: Duration? = nil,
        underlying: (any Error & Sendable)? = nil
    ) {
        self.kind = kind
        self.message = message
        self.path = path
        self.provider = provider
        self.retryable = retryable
        self.code = code
        self.retryAfter = retryAfter
        self.rare = Rare.boxed(underlying: underlying, billedUsage: nil)
    }

    /// Normalises anything thrown by a provider or stage into an `APIError`.
    public init(wrapping error: any Error, kind: Kind = .providerError, provider: String?, context: String) {
        if let api = error as? APIError {
            self = api
            if self.provider == nil { self.provider = provider }
        } else if error is CancellationError {
            self.init(.cancelled, "\(context): cancelled", provider: provider)
        } else {
            self.init(kind, "\(context): \(error)", provider: provider, underlying: error)
        }
    }

    package var summary: ErrorSummary { ErrorSummary(self) }

    /// This error with `usage` as what its attempt was billed (`billedUsage`), when the answer
    /// reported any and the error does not say already.
    public func billed(_ usage: Usage?) -> APIError {
        guard billedUsage == nil, let usage, usage.totalTokens > 0 || usage.promptTokens > 0 else { return self }
        var error = self
        error.billedUsage = usage
        return error
    }

    public static func == (lhs: APIError, rhs: APIError) -> Bool {
        lhs.kind == rhs.kind && lhs.message == rhs.message && lhs.path == rhs.path && lhs.provider == rhs.provider
            && lhs.retryable == rhs.retryable && lhs.code == rhs.code && lhs.retryAfter == rhs.retryAfter
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(message)
        hasher.combine(path)
        hasher.combine(provider)
    }
}

extension APIError: CustomStringConvertible {
    public var description: String {
        var text = "\(kind.rawValue): \(message)"
        if let path { text += " (at \(path))" }
        if let provider { text += " [\(provider)]" }
        return text
    }
}

/// The flat part of an error: what telemetry keeps of a primary failure.
package struct ErrorSummary: Sendable, Hashable {
    public var kind: APIError.Kind
    public var message: String
    public var provider: String?
    public var retryable: Bool
    /// `APIError.billedUsage`: usage the failed attempt's answer reported.
    public var billedUsage: Usage?

    public init(kind: APIError.Kind, message: String, provider: String? = nil, retryable: Bool = false, billedUsage: Usage? = nil) {
        self.kind = kind
        self.message = message
        self.provider = provider
        self.retryable = retryable
        self.billedUsage = billedUsage
    }

    public init(_ error: APIError) {
        self.init(kind: error.kind, message: error.message, provider: error.provider, retryable: error.retryable, billedUsage: error.billedUsage)
    }
}
