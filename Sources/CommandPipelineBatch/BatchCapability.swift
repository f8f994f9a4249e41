import CommandPipeline
import Foundation

/// A provider that runs many generate requests as one job on its own batch service, at about
/// half the price and within a day: submit requests that each carry an id, poll the job's
/// state and counts, fetch the results (matched by id: providers do not keep input order),
/// cancel. A job outlives the process that submitted it; everything is addressed by the
/// provider's job id.
///
/// ```
/// submit ──► pending ──► running ──► ended(completed | failed | cancelled | expired)
///                                         └─► results: one BatchResult per request the provider answered
/// ```
/// A request without a result in an ended job never ran (expired or cancelled): the caller
/// decides what that means for it.
public protocol BatchCapability: Sendable {
    /// How much one job may hold.
    var batchLimits: BatchLimits { get }
    /// The bytes `request` takes in a job as the provider receives it (its line or its entry),
    /// for splitting requests into jobs within `batchLimits.maxBytes`.
    func batchSize(of request: BatchRequest) throws -> Int
    /// Submits `requests` (at most `batchLimits`, distinct ids) as one job labelled `marker`
    /// where the provider keeps a label (metadata, display name), so `findBatch` can find it.
    func submitBatch(_ requests: [BatchRequest], marker: BatchMarker) async throws -> BatchJob
    /// A job submitted earlier with `marker`, when the provider can tell: for a submission
    /// that may or may not have reached the provider (the submitter was killed in between).
    func findBatch(_ marker: BatchMarker) async throws -> BatchLookup
    func batchStatus(_ jobID: String) async throws -> BatchJob
    /// The results of an ended job, in any order.
    func batchResults(_ jobID: String) async throws -> [BatchResult]
    /// The results of an ended job with what could not be read: a result file's line that is
    /// not JSON or names no request is reported (`unreadable`) instead of failing the whole job;
    /// a line that is broken but names its request, or a request answered twice, is a failed
    /// result for that request. The default wraps `batchResults`.
    func batchResultSet(_ jobID: String) async throws -> BatchResultSet
    func cancelBatch(_ jobID: String) async throws -> BatchJob
}

extension GenerationCapability {
    /// The provider's batch API: the provider itself when it implements `BatchCapability` —
    /// unless it is one of this package's adapters or the mock made without `.batch` in its
    /// capabilities. `BatchRun` takes its provider's.
    public var batch: (any BatchCapability)? {
        guard let batch = self as? any BatchCapability else { return nil }
        if let offering = self as? any BatchOffering, !offering.offersBatch { return nil }
        return batch
    }
}

extension BatchCapability {
    public func batchResultSet(_ jobID: String) async throws -> BatchResultSet { BatchResultSet(results: try await batchResults(jobID)) }
}

/// Every result of a job, and the lines of its result file that belong to no request.
public struct BatchResultSet: Sendable, Hashable {
    public var results: [BatchResult]
    /// One short description per line that could not be read and names no request
    /// (`line 4: not JSON (…)`), already redacted and cut.
    public var unreadable: [String]
    public init(results: [BatchResult], unreadable: [String] = []) {
        self.results = results
        self.unreadable = unreadable
    }
}

/// One request of a job, with the id its result comes back under.
public struct BatchRequest: Sendable, Hashable {
    /// At most 64 characters of `A-Z a-z 0-9 _ -` (the strictest provider's rule).
    public var id: String
    public var request: GenerationRequest
    public init(id: String, request: GenerationRequest) {
        self.id = id
        self.request = request
    }

    /// Whether `id` is acceptable to every provider.
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64 && id.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x5f || b == 0x2d
        }
    }
}

/// The label of one submission, unique to it (an idempotency marker), with what a provider
/// that keeps no label needs to recognise the job: its size and when it was sent.
public struct BatchMarker: Sendable, Hashable {
    /// Letters, digits, `-` and `_`, at most 64 characters.
    public var name: String
    public var requestCount: Int
    /// The submission was made at or after this time.
    public var notBefore: Date
    /// Jobs known to belong to other submissions (recorded earlier): never this one.
    public var knownJobs: Set<String>
    public init(name: String, requestCount: Int, notBefore: Date, knownJobs: Set<String> = []) {
        self.name = name
        self.requestCount = requestCount
        self.notBefore = notBefore
        self.knownJobs = knownJobs
    }
}

/// What a provider knows of a submission that may not have reached it.
public enum BatchLookup: Sendable, Hashable {
    case found(BatchJob)
    /// The provider has no such job: submitting again cannot double it.
    case absent
    /// The provider cannot tell (several candidates): submitting again might double the work.
    case ambiguous(String)
}

/// The largest job a provider accepts.
public struct BatchLimits: Sendable, Hashable {
    public var maxRequests: Int
    public var maxBytes: Int
    /// Every request of a job must name the same model (OpenAI's input file, Gemini's endpoint).
    public var oneModelPerJob: Bool
    public init(maxRequests: Int, maxBytes: Int, oneModelPerJob: Bool = false) {
        self.maxRequests = maxRequests
        self.maxBytes = maxBytes
        self.oneModelPerJob = oneModelPerJob
    }
}

/// A job as the provider last described it.
public struct BatchJob: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, CaseIterable {
        /// Accepted, not started (validating, queued).
        case pending
        case running
        /// Being cancelled: results of requests that finished will still come.
        case cancelling
        /// Ended with results (some requests may have failed).
        case completed
        /// The whole job failed (e.g. its input was rejected): no results.
        case failed
        case cancelled
        /// The provider's window (24 h) passed: results of finished requests only.
        case expired

        public var isEnded: Bool {
            switch self {
            case .pending, .running, .cancelling: false
            case .completed, .failed, .cancelled, .expired: true
            }
        }
    }

    public var id: String
    public var state: State
    public var counts: BatchCounts
    /// Why the job failed, when the provider said.
    public var message: String?

    public init(id: String, state: State, counts: BatchCounts, message: String? = nil) {
        self.id = id
        self.state = state
        self.counts = counts
        self.message = message
    }
}

/// Requests of a job by where they are. Every count is range-checked by the adapter (0…total).
public struct BatchCounts: Sendable, Hashable {
    public var total: Int
    public var succeeded: Int
    public var failed: Int
    public init(total: Int, succeeded: Int, failed: Int) {
        self.total = max(0, total)
        self.succeeded = max(0, min(succeeded, self.total))
        self.failed = max(0, min(failed, self.total - self.succeeded))
    }
    /// Requests not finished yet.
    public var pending: Int { total - succeeded - failed }
}

/// The answer to one request of a job.
public struct BatchResult: Sendable, Hashable {
    public var id: String
    public var outcome: Result<GenerationResponse, APIError>
    public init(id: String, outcome: Result<GenerationResponse, APIError>) {
        self.id = id
        self.outcome = outcome
    }
}
