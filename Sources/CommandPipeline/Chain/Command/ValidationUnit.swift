/// Rejects a command whose values break the rules (`PlannedCommand.validationIssues()`)
/// before anything runs: no upload, no call, no fallback.
package struct ValidationUnit: ChainUnit {
    public init() {}

    /// Only an invalid command enters the unit: a valid one (nearly every command) goes straight
    /// on, without an async frame of the unit's. (The rules are checked twice for an invalid one.)
    public func applies(to input: CommandRun) -> Bool { !input.command.validationIssues().isEmpty }

    @inline(__always)
    public func handle(_ input: CommandRun, next: Next<CommandRun, CommandOutcome>) async -> CommandOutcome {
        let issues = input.command.validationIssues()
        guard let first = issues.first else { return await next(input) }
        let message = issues.count == 1 ? first.message : issues.map { "\($0.path): \($0.message)" }.joined(separator: "; ")
        return CommandOutcome(APIError(.invalidCommand, message, path: first.path), state: input.state, log: input.log)
    }
}
