/// Receives every finished command, after its result is settled. A sink cannot change
/// the result or make another sink fail: it gets a copy and returns nothing.
public protocol TelemetrySink: Sendable {
    func record(_ result: Result<FinalizedCommand, APIError>, of command: PlannedCommand) async
}
