import CommandPipeline
import Synchronization

/// Keeps every record in memory; for tests and small tools.
public final class InMemoryTelemetrySink: TelemetrySink {
    private let storage = Mutex<[Result<FinalizedCommand, APIError>]>([])

    public init() {}

    public func record(_ result: Result<FinalizedCommand, APIError>, of command: PlannedCommand) async {
        storage.withLock { $0.append(result) }
    }

    public var records: [Result<FinalizedCommand, APIError>] { storage.withLock { $0 } }
}
