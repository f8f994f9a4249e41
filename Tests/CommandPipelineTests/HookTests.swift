import CommandPipeline
import CommandPipelineTesting
import Foundation
import Synchronization
import Testing

/// `CommandHook` through the engine, as a user registers hooks: enrichment, rejection, order,
/// isolation of failures after the command, error hooks, stream hooks, the scratch space and
/// the context's clock.
@Suite struct HookTests {
    /// What hooks saw, in order, across every hook of a test.
    final class Journal: Sendable {
        private let entries = Mutex<[String]>([])
        func add(_ entry: String) { entries.withLock { $0.append(entry) } }
        var all: [String] { entries.withLock { $0 } }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// A hook built from closures, named for the journal.
    struct Probe: CommandHook {
        let name: String
        let journal: Journal
        var before: (@Sendable (PlannedCommand, HookContext) throws -> PlannedCommand)? = nil
        var after: (@Sendable (FinalizedCommand, HookContext) throws -> Void)? = nil
        var error: (@Sendable (APIError, HookContext) throws -> Void)? = nil

        func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand {
            journal.add("\(name).before(\(context.commandID))")
            return try before?(command, context) ?? command
        }
        func afterSuccess(_ result: FinalizedCommand, context: HookContext) async throws {
            journal.add("\(name).after(\(result.id))")
            try after?(result, context)
        }
        func onError(_ error: APIError, context: HookContext) async throws {
            journal.add("\(name).error(\(error.kind.rawValue))")
            try self.error?(error, context)
        }
        func streamStarted(call: Int, context: HookContext) { journal.add("\(name).start(\(call))") }
        func streamChunk(_ text: String, call: Int, context: HookContext) { journal.add("\(name).chunk(\(call),\(text))") }
        func streamEnded(call: Int, context: HookContext) { journal.add("\(name).end(\(call))") }
    }

    func command(_ id: String, prompts: [String] = ["hello there"], model: String = "m") -> PlannedCommand {
        PlannedCommand(id: id, plan: ExecutionPlan(calls: prompts.map { APICall(model: model, parts: [.text($0)]) }))
    }

    func engine(_ provider: any GenerationCapability, _ hooks: [any CommandHook], clock: any PipelineClock = SystemClock()) throws -> PipelineEngine {
        var configuration = EngineConfiguration(clock: clock)
        configuration.hooks = hooks
        return try PipelineEngine(provider: provider, configuration: configuration)
    }

    @Test func beforeHooksEnrichInOrderAndTheEnrichedCommandRuns() async throws {
        let journal = Journal()
        let tag = Probe(name: "tag", journal: journal, before: { command, _ in
            var command = command
            command.metadata["team"] = "search"
            return command
        })
        let stamp = Probe(name: "stamp", journal: journal, before: { command, _ in
            var command = command
            // Sees what the hook before it returned.
            command.metadata["seen_team"] = command.metadata["team"] ?? .null
            command.plan.calls[0].config.maxTokens = 7
            return command
        })
        let provider = ScriptedProvider()
        let result = try await engine(provider, [tag, stamp]).executeWithFallback(command("c1")).get()
        #expect(result.metadata["team"] == "search")
        #expect(result.metadata["seen_team"] == "search")
        #expect(provider.requests.first?.config.maxTokens == 7, "the provider got the enriched command")
        #expect(journal.all == ["tag.before(c1)", "stamp.before(c1)", "tag.after(c1)", "stamp.after(c1)"])
    }

    @Test func aRejectingHookNamesItselfAndNothingRuns() async throws {
        let journal = Journal()
        let guardHook = Probe(name: "pii-guard", journal: journal, before: { _, _ in throw Failure(description: "prompt holds an e-mail address") })
        let later = Probe(name: "later", journal: journal)
        let provider = ScriptedProvider()
        let outcome = try await engine(provider, [guardHook, later]).run(command("c1"))
        let error = try #require(outcome.error)
        #expect(error.kind == .invalidCommand)
        #expect(error.message == "rejected by hook 'pii-guard': prompt holds an e-mail address")
        #expect(provider.requests.isEmpty, "no call after a rejection")
        #expect(journal.all == ["pii-guard.before(c1)"], "later hooks neither enrich nor see a rejected command: \(journal.all)")
        // A hook may reject with its own kind.
        let quota = Probe(name: "quota", journal: journal, before: { _, _ in throw APIError(.budgetExceeded, "team budget spent") })
        let rejected = try await engine(provider, [quota]).run(command("c2"))
        #expect(rejected.error?.kind == .budgetExceeded)
        #expect(rejected.error?.message == "rejected by hook 'quota': team budget spent")
        // Validation still applies to what the hooks return.
        let breaker = Probe(name: "breaker", journal: journal, before: { command, _ in
            var command = command
            command.plan.calls = []
            return command
        })
        let invalid = try await engine(provider, [breaker]).run(command("c3"))
        #expect(invalid.error?.kind == .invalidCommand)
        #expect(invalid.error?.path == "plan.calls")
    }

    /// A hook's text has no other bound: failures and rejections keep `messageLimit` characters.
    @Test func aHooksErrorTextIsCutToTheLimit() async throws {
        let journal = Journal()
        let long = String(repeating: "é", count: HookFailure.messageLimit + 500)
        let chatty = Probe(name: "chatty", journal: journal, before: { command, _ in
            guard command.id == "c1" else { return command }
            throw APIError(.invalidCommand, long)
        }, after: { _, _ in throw Failure(description: long) })
        let e = try engine(ScriptedProvider(), [chatty])
        let rejected = try #require(await e.run(command("c1")).error)
        #expect(rejected.message == "rejected by hook 'chatty': " + String(long.prefix(HookFailure.messageLimit)) + "…")
        let kept = try await e.executeWithFallback(command("c2")).get().telemetry.hookFailures
        #expect(kept.map(\.message) == [String(long.prefix(HookFailure.messageLimit)) + "…"])
        #expect(HookFailure.limited("short") == "short")
        #expect(HookFailure.limited(String(repeating: "a", count: HookFailure.messageLimit)).count == HookFailure.messageLimit, "at the limit nothing is cut")
    }

    /// Issue 21 class 1: a hook's text is redacted before it is cut to the limit, so a key
    /// straddling the cut leaves no piece behind; in a rejection and in a recorded failure.
    @Test func aHooksTextIsRedactedBeforeItIsCut() async throws {
        let key = "sk-hook-canary-0123456789abcdef"
        let text = String(repeating: "y", count: HookFailure.messageLimit - 10) + key + " and more"
        let leaky = Probe(name: "leaky", journal: Journal(), before: { command, _ in
            guard command.id == "c1" else { return command }
            throw APIError(.invalidCommand, text, code: "C_" + key)
        }, after: { _, _ in throw Failure(description: text) })
        var configuration = EngineConfiguration()
        configuration.hooks = [leaky]
        configuration.secrets = [key, "EMPTY"]
        let e = try PipelineEngine(provider: ScriptedProvider(), configuration: configuration)
        let rejected = try #require(await e.run(command("c1")).error)
        let kept = try await e.executeWithFallback(command("c2")).get().telemetry.hookFailures
        for shown in [rejected.message, rejected.code ?? "", kept.first?.message ?? "missing"] {
            #expect(!(0...(key.count - 6)).contains { shown.contains(key.dropFirst($0).prefix(6)) }, "\(shown.suffix(60))")
        }
        #expect(rejected.message.hasSuffix("<redacted>…"), "redacted, then cut")
    }

    @Test func aHookFailingAfterTheCommandChangesNothingButIsRecorded() async throws {
        let journal = Journal()
        let broken = Probe(name: "broken-metrics", journal: journal, after: { _, _ in throw Failure(description: "statsd unreachable") })
        let next = Probe(name: "next", journal: journal)
        let plain = try await engine(ScriptedProvider(), []).executeWithFallback(command("c1")).get()
        let hooked = try await engine(ScriptedProvider(), [broken, next]).executeWithFallback(command("c1")).get()
        #expect(hooked.responses.map(\.text) == plain.responses.map(\.text))
        #expect(hooked.usage == plain.usage)
        #expect(hooked.telemetry.hookFailures == [HookFailure(hook: "broken-metrics", phase: .afterSuccess, message: "statsd unreachable")])
        #expect(plain.telemetry.hookFailures.isEmpty)
        #expect(journal.all.suffix(2) == ["broken-metrics.after(c1)", "next.after(c1)"], "a failing hook does not stop the next one")
    }

    @Test func errorHooksSeeTheErrorAndTheirFailuresAreRecordedToo() async throws {
        let journal = Journal()
        let seen = Mutex<APIError?>(nil)
        let watcher = Probe(name: "watcher", journal: journal, error: { error, _ in seen.withLock { $0 = error } })
        let broken = Probe(name: "pager", journal: journal, error: { _, _ in throw Failure(description: "pager down") })
        let provider = ScriptedProvider(otherwise: .fail(APIError(.providerError, "bad key", provider: "scripted", retryable: false)))
        let outcome = try await engine(provider, [watcher, broken]).run(command("c1"))
        #expect(outcome.error?.kind == .providerError)
        #expect(outcome.error?.message.contains("bad key") == true, "the error is the provider's, unchanged")
        #expect(seen.withLock { $0 }?.kind == .providerError)
        #expect(outcome.telemetry.hookFailures == [HookFailure(hook: "pager", phase: .onError, message: "pager down")])
    }

    @Test func streamHooksFollowEachStreamingCall() async throws {
        let journal = Journal()
        let probe = Probe(name: "s", journal: journal)
        let engine = try engine(ScriptedProvider(otherwise: .answer("one two three")), [probe])
        var text = ""
        for await event in engine.events(for: command("c1")) {
            if case .textDelta(_, let piece) = event.kind { text += piece }
        }
        let streamed = journal.all.filter { !$0.contains(".before(") && !$0.contains(".after(") }
        #expect(streamed == ["s.start(0)", "s.chunk(0,one )", "s.chunk(0,two )", "s.chunk(0,three)", "s.end(0)"])
        #expect(streamed.compactMap { $0.hasPrefix("s.chunk(0,") ? String($0.dropFirst(10).dropLast()) : nil }.joined() == text)
        // Without streaming there is no stream to follow.
        let quiet = Journal()
        _ = try await self.engine(ScriptedProvider(), [Probe(name: "q", journal: quiet)]).run(command("c2"))
        #expect(quiet.all == ["q.before(c2)", "q.after(c2)"])
    }

    @Test func theScratchSpaceIsSharedWithinACommandAndFreshForEach() async throws {
        struct Writer: CommandHook {
            let name = "writer"
            func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand {
                #expect(context[scratch: "started"] == nil, "a fresh scratch space for each command")
                context[scratch: "started"] = command.id
                return command
            }
            func event(_ event: PipelineEvent.Kind, context: HookContext) {
                if case .attemptStarted = event { context.updateScratch("attempts", default: 0) { $0 += 1 } }
            }
        }
        struct Reader: CommandHook {
            let name = "reader"
            let journal: Journal
            func afterSuccess(_ result: FinalizedCommand, context: HookContext) async throws {
                journal.add("\(context[scratch: "started"] as? String ?? "-"):\(context[scratch: "attempts"] as? Int ?? -1)")
            }
        }
        let journal = Journal()
        let engine = try engine(ScriptedProvider(), [Writer(), Reader(journal: journal)])
        _ = await engine.run(command("a", prompts: ["x", "y", "z"]))
        _ = await engine.run(command("b"))
        #expect(journal.all == ["a:3", "b:1"])
    }

    /// The log keeps its readers, the readers keep the context: if the context kept the log,
    /// every command's log (and all it folded) would live for ever. 300,000 commands with
    /// `--stats` once took 588 MB this way.
    @Test func nothingOfACommandOutlivesIt() async throws {
        final class Watch: @unchecked Sendable {
            private let lock = NSLock()
            private weak var scratch: HookScratch?
            func set(_ value: HookScratch) { lock.withLock { scratch = value } }
            var alive: Bool { lock.withLock { scratch != nil } }
        }
        struct Spy: CommandHook {
            let name = "spy"
            let watch: Watch
            func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand {
                watch.set(context.scratch)
                return command
            }
        }
        let watch = Watch()
        let engine = try engine(ScriptedProvider(), [Spy(watch: watch), MetricsCollector()])
        var outcome: CommandOutcome? = await engine.run(command("c1"))
        #expect(outcome?.succeeded == true)
        outcome = nil
        #expect(!watch.alive, "the command's hook context (and its log) were released")
    }

    @Test func theContextCarriesTheCommandAndItsTimeOnTheEnginesClock() async throws {
        let clock = ManualClock()
        struct Timer: CommandHook {
            let name = "timer"
            let clock: ManualClock
            let journal: Journal
            func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand {
                clock.advance(by: .milliseconds(250))
                return command
            }
            func afterSuccess(_ result: FinalizedCommand, context: HookContext) async throws {
                journal.add("\(context.commandID)@\(context.index) on \(context.provider): \(context.elapsed)")
            }
        }
        let journal = Journal()
        let engine = try engine(ScriptedProvider(), [Timer(clock: clock, journal: journal)], clock: clock)
        _ = await engine.run(command("c7"), index: 41)
        #expect(journal.all == ["c7@41 on scripted: 0.25 seconds"])
    }
    /// The command deadline counts from the command's start: time a before-hook took is part of
    /// it (`--timeout` covers hook time). A hook takes 20 s of a 30 s deadline; 10 s into the
    /// call, the command is past it.
    @Test func theCommandDeadlineCountsTheTimeHooksTook() async throws {
        let clock = ManualClock()
        struct Slow: CommandHook {
            let name = "slow"
            let clock: ManualClock
            func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand {
                clock.advance(by: .seconds(20))
                return command
            }
        }
        let provider = FlakyProvider(clock: clock, failures: 0, error: APIError(.providerError, "unused"), hang: .seconds(3600))
        var configuration = EngineConfiguration(clock: clock, retryPolicy: .none, commandTimeout: .seconds(30))
        configuration.hooks = [Slow(clock: clock)]
        let engine = try PipelineEngine(provider: provider, configuration: configuration)
        let done = Flag()
        let task = Task {
            let outcome = await engine.run(command("c1"))
            done.set()
            return outcome
        }
        #expect(await clock.waitForSleepers(2), "the deadline and the hanging call")
        clock.advance(by: .seconds(10))
        // Bounded by yields, not by time: the deadline (if it counts the hook) has fired.
        var yields = 0
        while !done.isSet && yields < 5_000_000 {
            yields += 1
            await Task.yield()
        }
        #expect(done.isSet, "30 s after the command began it was still running")
        if !done.isSet { clock.advance(by: .seconds(7200)) }
        let error = try #require(await task.value.error)
        #expect(error.kind == .timeout)
    }
}
