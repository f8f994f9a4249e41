/// Rejects a command whose values break the rules (`PlannedCommand.validationIssues()`)
/// before anything runs: no upload, no call, no fallback.
package struct ValidationUnit: ChainUnit {
    public init() {}

    /// Only an invalid command enters the unit: a valid one (nearly every command) goes straight
    /// on, without an async frame of the unit's. (The rules are checked twice for an invalid one.)
    /// A command that came in validated (`ValidatedCommand`, the CLI's) is not checked again.
    public func applies(to input: CommandRun) -> Bool { !input.commandIsValidated && !input.command.validationIssues().isEmpty }

    @inline(__always)
    public func handle(_ input: CommandRun, next: Next<CommandRun, CommandOutcome>) async -> CommandOutcome {
        let issues = input.command.validationIssues()
        guard let first = issues.first else { return await next(input) }
        let message = issues.count == 1 ? first.message : issues.map { "\($0.path): \($0.message)" }.joined(separator: "; ")
        return CommandOutcome(APIError(.invalidCommand, message, path: first.path), state: input.state, log: input.log)
    }
}

/// A command whose rules were checked and hold (`PlannedCommand.validationIssues()` found
/// none); made only by that check. The engine runs it without checking again
/// (`PipelineEngine.run(_:index:fallback:streaming:observer:)` with one): the CLI's decoder
/// validates every command it reads (`WireFormat.validatedCommand`), and the engine's
/// `ValidationUnit` used to repeat the work for each. A unit that replaces the command (a hook
/// enriching it) makes the engine check the new one.
package struct ValidatedCommand: Sendable {
    package let command: PlannedCommand

    /// The command, validated; nil, with every rule it breaks in `issues`, when it breaks one.
    package init?(checking command: PlannedCommand, issues: inout [ValidationIssue]) {
        issues = command.validationIssues()
        guard issues.isEmpty else { return nil }
        self.command = command
    }
}
