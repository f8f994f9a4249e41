import Synchronization

/// Runs the engine's hooks around each command (see `CommandHook`): before-hooks in order, each
/// given what the one before returned; the command's call events to every hook as they are
/// recorded; after-hooks in order once the command has ended, each failure kept in the
/// telemetry and nowhere else. Not in the chain when there are no hooks.
package struct HookUnit: ChainUnit {
    public let hooks: [any CommandHook]
    /// Removes secrets from hooks' text before it is cut (`SecretRedactor.preview`).
    public let redactor: SecretRedactor

    public init(hooks: [any CommandHook], redactor: SecretRedactor = .none) {
        self.hooks = hooks
        self.redactor = redactor
    }

    public func applies(to input: CommandRun) -> Bool { !hooks.isEmpty }

    public func handle(_ input: CommandRun, next: Next<CommandRun, CommandOutcome>) async -> CommandOutcome {
        let context = HookContext(log: input.log, commandID: input.command.id)
        var command = input.command
        for hook in hooks {
            do {
                command = try await hook.beforeCommand(command, context: context)
            } catch {
                return CommandOutcome(Self.rejection(error, by: hook.name, redactor: redactor), state: input.state, log: input.log)
            }
        }
        var run = input
        run.state = ExecutionState(command: command)
        let hooks = self.hooks
        let streams = Streams()
        input.log.addReader { kind in
            for hook in hooks { hook.event(kind, context: context) }
            switch kind {
            case .textDelta(let call, let text):
                if streams.start(call) { for hook in hooks { hook.streamStarted(call: call, context: context) } }
                for hook in hooks { hook.streamChunk(text, call: call, context: context) }
            case .callFinished(let response):
                if streams.end(response.callIndex) { for hook in hooks { hook.streamEnded(call: response.callIndex, context: context) } }
            case .callFailed(let call, _):
                if streams.end(call) { for hook in hooks { hook.streamEnded(call: call, context: context) } }
            default:
                break
            }
        }
        let outcome = await next(run)
        var failures: [HookFailure] = []
        for hook in hooks {
            do {
                switch outcome.result {
                case .success(let finalized): try await hook.afterSuccess(finalized, context: context)
                case .failure(let error): try await hook.onError(error, context: context)
                }
            } catch {
                failures.append(HookFailure(
                    hook: hook.name, phase: outcome.succeeded ? .afterSuccess : .onError, message: redactor.preview(Self.describe(error), limit: HookFailure.messageLimit)))
            }
        }
        return failures.isEmpty ? outcome : outcome.adding(hookFailures: failures)
    }

    /// The error a rejecting hook ends its command with: the hook's own `APIError` (kind kept),
    /// or `invalid_command`, either way naming the hook.
    static func rejection(_ error: any Error, by hook: String, redactor: SecretRedactor = .none) -> APIError {
        if error is CancellationError { return APIError(.cancelled, "cancelled in hook '\(hook)' before the command ran") }
        let text = redactor.preview(describe(error), limit: HookFailure.messageLimit)
        guard var api = error as? APIError else { return APIError(.invalidCommand, "rejected by hook '\(hook)': \(text)") }
        api.message = "rejected by hook '\(hook)': \(text)"
        api.code = api.code.map { redactor.preview($0, limit: 100) }
        return api
    }

    static func describe(_ error: any Error) -> String {
        (error as? APIError)?.message ?? String(describing: error)
    }

    /// Calls of the current execution whose answer has begun to stream.
    private final class Streams: Sendable {
        private let open = Mutex<Set<Int>>([])
        /// Whether `call` starts streaming now (its first delta).
        func start(_ call: Int) -> Bool { open.withLock { $0.insert(call).inserted } }
        /// Whether `call` was streaming (and is no longer).
        func end(_ call: Int) -> Bool { open.withLock { $0.remove(call) != nil } }
    }
}

extension CommandOutcome {
    /// The same outcome with `failures` added to its telemetry (and to the finalized command's).
    func adding(hookFailures failures: [HookFailure]) -> CommandOutcome {
        switch result {
        case .success(var finalized):
            finalized.telemetry.hookFailures += failures
            return CommandOutcome(finalized, state: state)
        case .failure(let error):
            var telemetry = self.telemetry
            telemetry.hookFailures += failures
            return CommandOutcome(result: .failure(error), state: state, telemetry: telemetry, partialResponses: partialResponses, failedCalls: failedCalls)
        }
    }
}
