import Synchronization

/// Receives every finished command, after its result is settled. A sink cannot change
/// the result or make another sink fail: it gets a copy and returns nothing.
public protocol TelemetrySink: Sendable {
    func record(_ result: Result<FinalizedCommand, APIError>, of command: PlannedCommand) async
}

/// Keeps every record in memory; for tests and small tools.
public final class InMemoryTelemetrySink: TelemetrySink {
    private let storage = Mutex<[Result<FinalizedCommand, APIError>]>([])

    public init() {}

    public func record(_ result: Result<FinalizedCommand, APIError>, of command: PlannedCommand) async {
        storage.withLock { $0.append(result) }
    }

    public var records: [Result<FinalizedCommand, APIError>] { storage.withLock { $0 } }
}
