import CommandPipeline

/// Why a batch operation stopped, in words a user can act on, and what kind of stop it is
/// (the CLI maps the kind to its exit status).
public struct BatchError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The job file, its manifest or the request is unusable: nothing was sent (CLI exit 2).
        case invalid
        /// The provider refused or could not be reached (exit 1).
        case provider
        /// The job file could not be written (exit 3).
        case write
        /// Not yet: jobs have not ended, or a submission cannot be reconciled (exit 4).
        case notFinished
    }

    public var kind: Kind
    public var message: String
    /// How to fix it, when there is more to say than the message.
    public var hint: String?

    public init(_ kind: Kind, _ message: String, hint: String? = nil) {
        self.kind = kind
        self.message = message
        self.hint = hint
    }

    public var description: String { message }

    static func cannotWrite(_ problem: String) -> BatchError { BatchError(.write, "cannot write the job file: \(problem)") }

    /// An adapter's error in one line (an `APIError`'s own description).
    static func describe(_ error: any Error) -> String { (error as? APIError).map(\.description) ?? "\(error)" }
}
