/// Hands every settled outcome to the engine's telemetry sinks, in order. A sink gets a copy
/// and returns nothing: it cannot change the outcome.
package struct TelemetrySinkUnit: ChainUnit {
    public let sinks: [any TelemetrySink]

    public init(sinks: [any TelemetrySink]) { self.sinks = sinks }

    public func handle(_ input: CommandRun, next: Next<CommandRun, CommandOutcome>) async -> CommandOutcome {
        let outcome = await next(input)
        for sink in sinks { await sink.record(outcome.result, of: input.command) }
        return outcome
    }
}
