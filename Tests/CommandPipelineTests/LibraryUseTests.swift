import CommandPipeline
import CommandPipelineTesting
import Synchronization
import Testing

private func command(_ id: String = "c", model: String = "m") -> PlannedCommand {
    PlannedCommand(id: id, plan: ExecutionPlan(call: APICall(model: model, parts: [.text("q")])))
}

private let overloaded = APIError(.providerError, "overloaded", provider: "scripted", retryable: true, code: "unavailable")

/// Configuration is checked where an engine is made from it: every value out of its range is a
/// `ConfigurationError` naming the field and its range (the CLI flags' ranges), never a trap,
/// never a silent clamp.
@Suite struct ConfigurationValidationTests {
    func refusal(_ configuration: EngineConfiguration) -> ConfigurationError? {
        do {
            _ = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
            return nil
        } catch {
            return error
        }
    }

    @Test func maxConcurrentCallsOutOfRangeIsRefused() throws {
        let zero = try #require(refusal(EngineConfiguration(maxConcurrentCalls: 0)))
        #expect(zero.field == "EngineConfiguration.maxConcurrentCalls")
        #expect(zero.message == "EngineConfiguration.maxConcurrentCalls is 0; it must be between 1 and 10,000 (calls in flight per command)")
        #expect(refusal(EngineConfiguration(maxConcurrentCalls: -5))?.field == "EngineConfiguration.maxConcurrentCalls")
        #expect(refusal(EngineConfiguration(maxConcurrentCalls: 10_001))?.field == "EngineConfiguration.maxConcurrentCalls")
        #expect(refusal(EngineConfiguration(maxConcurrentCalls: 1)) == nil)
        #expect(refusal(EngineConfiguration(maxConcurrentCalls: 10_000)) == nil)
    }

    @Test func retryPolicyOutOfRangeIsRefusedHoweverItWasSet() throws {
        let made = RetryPolicy(maxAttempts: 0)   // made without a trap
        let error = try #require(refusal(EngineConfiguration(retryPolicy: made)))
        #expect(error.field == "EngineConfiguration.retryPolicy.maxAttempts")
        #expect(error.message.contains("is 0; it must be between 1 and 100"))
        var policy = RetryPolicy()
        policy.maxAttempts = 0   // set after: refused the same, not clamped
        #expect(refusal(EngineConfiguration(retryPolicy: policy))?.field == "EngineConfiguration.retryPolicy.maxAttempts")
        #expect(refusal(EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 101)))?.field == "EngineConfiguration.retryPolicy.maxAttempts")
        #expect(refusal(EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 100))) == nil)
        #expect(refusal(EngineConfiguration(retryPolicy: RetryPolicy(jitter: 1.5)))?.field == "EngineConfiguration.retryPolicy.jitter")
        #expect(refusal(EngineConfiguration(retryPolicy: RetryPolicy(jitter: .nan)))?.field == "EngineConfiguration.retryPolicy.jitter")
        #expect(refusal(EngineConfiguration(retryPolicy: RetryPolicy(jitter: -0.1)))?.field == "EngineConfiguration.retryPolicy.jitter")
        #expect(refusal(EngineConfiguration(retryPolicy: RetryPolicy(jitter: 1))) == nil)
        #expect(refusal(EngineConfiguration(retryPolicy: RetryPolicy(baseDelay: .seconds(-1))))?.field == "EngineConfiguration.retryPolicy.baseDelay")
        #expect(refusal(EngineConfiguration(retryPolicy: RetryPolicy(maxDelay: .seconds(-1))))?.field == "EngineConfiguration.retryPolicy.maxDelay")
        #expect(refusal(EngineConfiguration(retryPolicy: RetryPolicy(maxRetryAfter: .seconds(604_801))))?.field == "EngineConfiguration.retryPolicy.maxRetryAfter")
        #expect(refusal(EngineConfiguration(retryPolicy: RetryPolicy(baseDelay: .zero))) == nil)
        #expect(refusal(EngineConfiguration(retryPolicy: .none)) == nil)
    }

    @Test func timeoutsOutOfRangeAreRefusedNotIgnored() throws {
        let negative = try #require(refusal(EngineConfiguration(callTimeout: .seconds(-1))))
        #expect(negative.field == "EngineConfiguration.callTimeout")
        #expect(negative.message.contains("must be from"))
        #expect(refusal(EngineConfiguration(callTimeout: .zero))?.field == "EngineConfiguration.callTimeout")
        let zero = try #require(refusal(EngineConfiguration(commandTimeout: .zero)))
        #expect(zero.field == "EngineConfiguration.commandTimeout")
        #expect(refusal(EngineConfiguration(commandTimeout: .seconds(604_801)))?.field == "EngineConfiguration.commandTimeout")
        #expect(refusal(EngineConfiguration(callTimeout: .milliseconds(1), commandTimeout: .seconds(604_800))) == nil)
        #expect(refusal(EngineConfiguration(callTimeout: nil, commandTimeout: nil)) == nil)
    }

    @Test func rateLimitsOutOfRangeAreRefusedLikeThePlansAre() throws {
        let zero = try #require(refusal(EngineConfiguration(rateLimit: RateConstraint(requestsPerMinute: 0))))
        #expect(zero.field == "EngineConfiguration.rateLimit.requestsPerMinute")
        #expect(zero.message.contains("is 0; it must be between 1 and 10,000,000"))
        #expect(refusal(EngineConfiguration(rateLimit: RateConstraint(tokensPerMinute: 0)))?.field == "EngineConfiguration.rateLimit.tokensPerMinute")
        #expect(refusal(EngineConfiguration(rateLimit: RateConstraint(tokensPerMinute: 10_000_000_001)))?.field == "EngineConfiguration.rateLimit.tokensPerMinute")
        #expect(refusal(EngineConfiguration(rateLimit: RateConstraint(requestsPerMinute: 1, tokensPerMinute: 10_000_000_000))) == nil)
    }

    /// The default configuration is valid (the engine made without one cannot fail), and a
    /// `validate()` call gives the same answer as making an engine.
    @Test func maxRepairsOutOfRangeIsRefusedNotClamped() throws {
        for value in [-1, 11] {
            var configuration = EngineConfiguration()
            configuration.maxRepairs = value
            #expect(refusal(configuration)?.field == "EngineConfiguration.maxRepairs", "\(value)")
        }
        var ten = EngineConfiguration()
        ten.maxRepairs = 10
        #expect(refusal(ten) == nil)
    }

    @Test func theDefaultIsValidAndValidateAgreesWithTheEngine() throws {
        try EngineConfiguration().validate()
        let bad = EngineConfiguration(maxConcurrentCalls: 0)
        #expect(throws: ConfigurationError.self) { try bad.validate() }
        #expect(throws: ConfigurationError.self) { try RetryPolicy(maxAttempts: 0).validate() }
    }
}

/// A stage of one's own, added to a configured engine, runs with everything else kept.
@Suite struct CustomStageTests {
    /// Records each command it sees; changes nothing.
    final class Probe: ExecutionStage {
        let seen = Mutex<[String]>([])
        var name: String { "probe" }
        func applies(to state: ExecutionState) -> Bool { true }
        func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState {
            seen.withLock { $0.append(state.command.id) }
            return state
        }
    }

    final class Calls: CommandHook {
        let journal = Mutex<[String]>([])
        var name: String { "journal" }
        func afterSuccess(_ result: FinalizedCommand, context: HookContext) async throws { journal.withLock { $0.append("after(\(result.id))") } }
        func onError(_ error: APIError, context: HookContext) async throws { journal.withLock { $0.append("error(\(error.kind.rawValue))") } }
    }

    @Test func anInsertedStageRunsWithRetriesHooksSinksAndDeadlineKept() async throws {
        let clock = ManualClock()
        let provider = ScriptedProvider(script: ["m": [.fail(overloaded), .answer("second time")], "slow": [.hang]])
        let sink = InMemoryTelemetrySink()
        let hook = Calls()
        var configuration = EngineConfiguration(
            clock: clock, telemetrySinks: [sink], retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .zero, jitter: 0),
            commandTimeout: .seconds(5))
        configuration.hooks = [hook]
        let probe = Probe()
        let engine = try PipelineEngine(provider: provider, configuration: configuration).insertingStage(probe, before: GenerateStage.name)
        #expect(engine.stages.map(\.name) == ["upload", "cache", "probe", "generate", "telemetry"])

        let finalized = try await engine.execute(command("retried")).get()
        #expect(finalized.responses.first?.text == "second time")
        #expect(finalized.telemetry.calls.first?.attempts == 2, "retries kept")
        #expect(finalized.telemetry.durations.stages.map(\.name).contains("probe"), "the stage's time is in telemetry")
        #expect(probe.seen.withLock { $0 } == ["retried"])

        // The deadline is kept: a hanging call ends in `timeout` when the clock passes it.
        async let hung = engine.execute(command("hung", model: "slow"))
        #expect(await provider.waitForHanging(1))
        #expect(await clock.waitForSleepers(1), "the command's deadline waits on the clock")
        clock.advance(by: .seconds(6))
        #expect(await hung.failure?.kind == .timeout)

        #expect(hook.journal.withLock { $0 } == ["after(retried)", "error(timeout)"], "hooks kept")
        #expect(sink.records.count == 2, "sinks kept")
    }

    /// `Design/architecture.md`, "Adding a stage", verbatim: the redact stage added to a
    /// configured engine, which still retries.
    @Test func theArchitectureDocsStageExampleKeepsTheChain() async throws {
        struct RedactStage: ExecutionStage {
            public var name: String { "redact" }
            public func applies(to state: ExecutionState) -> Bool { !state.responses.isEmpty }
            public func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState {
                state.with(responses: state.responses.map { var r = $0; r.text = r.text.replacing(/\S+@\S+/, with: "[email]"); return r })
            }
        }
        let provider = ScriptedProvider(script: ["m": [.fail(overloaded), .answer("write to ann@example.com today")]])
        let configuration = EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 2, baseDelay: .zero, jitter: 0))
        let engine = try PipelineEngine(provider: provider, configuration: configuration)
            .insertingStage(RedactStage(), before: TelemetryStage.name)
        let finalized = try await engine.execute(command()).get()
        #expect(finalized.responses.first?.text == "write to [email] today")
        #expect(finalized.telemetry.calls.first?.attempts == 2)
    }

    @Test func insertingBeforeAStageThatIsNotThereNamesTheStagesThereAre() throws {
        let engine = PipelineEngine(provider: MockProvider.make())
        #expect(throws: ConfigurationError.self) { try engine.insertingStage(Probe(), before: "generation") }
        do {
            _ = try engine.insertingStage(Probe(), before: "generation")
        } catch {
            #expect(error.message == "no stage 'generation' to insert 'probe' before; the engine's stages are 'upload', 'cache', 'generate', 'telemetry'")
        }
        #expect(try engine.insertingStage(Probe(), before: nil).stages.map(\.name).last == "probe")
    }
}

/// Small things a library user needs: repeatable jitter, scripted delays and hangs, messages
/// fit for Swift callers.
@Suite struct LibraryConveniencesTests {
    /// A clock whose sleeps return at once and are written down.
    final class RecordingClock: PipelineClock {
        let sleeps = Mutex<[Duration]>([])
        var now: Duration { .zero }
        func sleep(until deadline: Duration) async throws { sleeps.withLock { $0.append(deadline) } }
    }

    @Test func aSeededJitterSourceMakesRetryWaitsRepeatable() async throws {
        let policy = RetryPolicy(maxAttempts: 4, baseDelay: .seconds(1), jitter: 0.5)
        func waits(seed: UInt64) async throws -> [Duration] {
            let clock = RecordingClock()
            let provider = ScriptedProvider(script: ["m": [.fail(overloaded), .fail(overloaded), .fail(overloaded), .answer("ok")]])
            let engine = try PipelineEngine(
                provider: provider, configuration: EngineConfiguration(clock: clock, retryPolicy: policy, jitterSeed: seed))
            _ = try await engine.execute(command()).get()
            return clock.sleeps.withLock { $0 }
        }
        let source = JitterSource.seeded(42)
        let expected = (1...3).map { policy.delay(after: $0, error: overloaded, random: source.next()) }
        #expect(try await waits(seed: 42) == expected)
        #expect(try await waits(seed: 42) == expected, "the same again")
        #expect(try await waits(seed: 43) != expected)
        #expect(Set(expected).count == 3 && expected.allSatisfy { $0 > .zero && $0 <= .seconds(4) })
    }

    @Test func aSeededSourceGivesFractions() {
        let source = JitterSource.seeded(0)
        let values = (0..<1_000).map { _ in source.next() }
        #expect(values.allSatisfy { (0..<1).contains($0) })
        #expect(Set(values).count == 1_000)
    }

    @Test func scriptedDelayWaitsOnTheClockThenAnswers() async throws {
        let clock = ManualClock()
        let provider = ScriptedProvider(script: ["m": [.delay(.seconds(2), then: .answer("late"))]], clock: clock)
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock))
        async let result = engine.execute(command())
        #expect(await clock.waitForSleepers(1))
        clock.advance(by: .seconds(1))
        #expect(clock.sleeperCount == 1, "not yet")
        clock.advance(by: .seconds(1))
        let finalized = try await result.get()
        #expect(finalized.responses.first?.text == "late")
    }

    @Test func scriptedDelayAlsoDelaysAStream() async throws {
        let clock = ManualClock()
        let provider = ScriptedProvider(script: ["m": [.delay(.seconds(2), then: .answer("a b"))]], clock: clock)
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock))
        let events = engine.events(for: command())
        async let text: String = {
            var text = ""
            for await event in events { if case .textDelta(_, let piece) = event.kind { text += piece } }
            return text
        }()
        #expect(await clock.waitForSleepers(1))
        clock.advance(by: .seconds(2))
        #expect(await text == "a b")
    }

    @Test func scriptedHangEndsOnlyWhenCancelled() async throws {
        let provider = ScriptedProvider(script: ["m": [.hang]])
        let engine = PipelineEngine(provider: provider)
        let task = Task { await engine.execute(command()) }
        #expect(await provider.waitForHanging(1))
        #expect(provider.hangingCount == 1)
        task.cancel()
        #expect(await task.value.failure?.kind == .cancelled)
        #expect(provider.hangingCount == 0)
    }

    @Test func theEmptyIDMessageFitsSwiftCallers() throws {
        let issues = PlannedCommand(id: "", plan: ExecutionPlan(call: APICall(model: "m", parts: [.text("q")]))).validationIssues()
        let issue = try #require(issues.first { $0.path == "id" })
        #expect(!issue.message.contains("omit it"))
        #expect(issue.message.hasPrefix("id must not be empty; give the command an id"))
    }
}
