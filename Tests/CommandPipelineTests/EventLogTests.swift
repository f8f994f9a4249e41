import CommandPipeline
import CommandPipelineTesting
import Synchronization
import Testing

/// The event log and the event stream: what users see of a command as it runs.
@Suite struct EventLogTests {
    let unavailable = APIError(.providerError, "overloaded", provider: "scripted", retryable: true, code: "unavailable")
    let fastRetries = RetryPolicy(maxAttempts: 3, baseDelay: .zero, jitter: 0)

    func engine(_ provider: ScriptedProvider, policy: RetryPolicy? = nil) throws -> PipelineEngine {
        try PipelineEngine(provider: provider, configuration: EngineConfiguration(retryPolicy: policy ?? fastRetries))
    }

    func collect(_ stream: some AsyncSequence<PipelineEvent, Never>) async -> [PipelineEvent] {
        var events: [PipelineEvent] = []
        for await event in stream { events.append(event) }
        return events
    }

    /// Every rule of the stream: seq 0, 1, 2, …; started first; one terminal, last.
    func checkShape(_ events: [PipelineEvent], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(events.map(\.seq) == Array(0..<events.count), sourceLocation: sourceLocation)
        #expect(events.first?.type == "command_started", sourceLocation: sourceLocation)
        #expect(events.filter(\.isTerminal).count == 1, sourceLocation: sourceLocation)
        #expect(events.last?.isTerminal == true, sourceLocation: sourceLocation)
    }

    func texts(_ events: [PipelineEvent], call: Int) -> String {
        events.compactMap { if case .textDelta(call, let text) = $0.kind { text } else { nil } }.joined()
    }

    func outcome(_ events: [PipelineEvent]) -> CommandOutcome? {
        switch events.last?.kind {
        case .commandSucceeded(let outcome)?, .commandFailed(let outcome)?: outcome
        default: nil
        }
    }

    @Test func aStreamedCommandShowsEveryStepAndItsDeltasMakeTheText() async throws {
        let provider = ScriptedProvider(script: ["m": [.answer("the quick brown fox")]])
        let events = await collect(try engine(provider).events(for: command(prompts: ["go"]), index: 7))
        checkShape(events)
        #expect(events.allSatisfy { $0.commandID == "c" && $0.index == 7 })
        #expect(events.map(\.type) == [
            "command_started", "stage_started", "attempt_started", "text_delta", "text_delta", "text_delta", "text_delta", "call_finished",
            "stage_finished", "stage_started", "stage_finished", "command_succeeded",
        ])
        let finalized = try #require(try outcome(events)?.result.get())
        #expect(texts(events, call: 0) == "the quick brown fox")
        #expect(finalized.responses.first?.text == texts(events, call: 0))
        // Times are measured when the stream is read: they never go back.
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.elapsed <= $1.elapsed })
    }

    @Test func retriesWaitsAndTheFallbackAreEvents() async throws {
        let provider = ScriptedProvider(script: ["big": [.fail(unavailable)], "small": [.answer("rescued")]])
        let cmd = command(model: "big", fallback: APICall(model: "small", parts: [.text("Q")]))
        let events = await collect(try engine(provider, policy: RetryPolicy(maxAttempts: 2, baseDelay: .zero, jitter: 0)).events(for: cmd))
        checkShape(events)
        let attempts = events.compactMap { event -> (Int, Bool)? in
            if case .attemptFailed(_, let attempt, _, let willRetry) = event.kind { (attempt, willRetry) } else { nil }
        }
        #expect(attempts.map(\.0) == [1, 2] && attempts.map(\.1) == [true, false])
        #expect(events.contains { if case .waiting(0, "backoff", _) = $0.kind { true } else { false } })
        let types = events.map(\.type)
        let fallback = try #require(types.firstIndex(of: "fallback_started"))
        #expect(try #require(types.firstIndex(of: "call_failed")) < fallback)
        #expect(types.last == "command_succeeded")
        let done = try #require(outcome(events))
        #expect(done.telemetry.usedFallback && done.telemetry.primaryError?.message == "overloaded")
        #expect(done.telemetry.calls.map(\.attempts) == [2, 1])
        #expect(texts(events[fallback...].map { $0 }, call: 0) == "rescued")
    }

    @Test func aStreamThatBreaksBeforeItsFirstDeltaIsRetried() async throws {
        let provider = ScriptedProvider(script: ["m": [.breakAfter([], unavailable), .answer("second time lucky")]])
        let events = await collect(try engine(provider).events(for: command(prompts: ["go"])))
        checkShape(events)
        let done = try #require(outcome(events))
        #expect(done.succeeded)
        #expect(done.telemetry.calls.first?.attempts == 2)
        #expect(texts(events, call: 0) == "second time lucky")
    }

    @Test func aStreamThatBreaksAfterADeltaFailsForGoodAndKeepsItsText() async throws {
        let provider = ScriptedProvider(script: ["m": [.breakAfter(["Hel", "lo "], unavailable), .answer("never sent")], "f": [.answer("fallback")]])
        let cmd = command(model: "m", fallback: APICall(model: "f", parts: [.text("Q")]))
        let events = await collect(try engine(provider).events(for: cmd))
        checkShape(events)
        let done = try #require(outcome(events))
        let error = try #require(done.error)
        #expect(error.code == ProviderCall.streamInterruptedCode)
        #expect(!error.retryable, "an answer that has begun is not asked for again")
        #expect(done.telemetry.calls.first?.attempts == 1)
        #expect(!events.contains { $0.type == "fallback_started" }, "the reader has part of this model's answer: no other model's")
        #expect(provider.requests.count == 1)
        let partial = try #require(done.partialResponses.first)
        #expect(partial.text == "Hello " && partial.finishReason == CallResponse.interrupted && partial.model == "m")
        #expect(!partial.usage.isReported && partial.usage.unreportedCalls == 1 && partial.usage.totalTokens == 0, "the broken stream's usage is unknown, not zero: \(partial.usage)")
        #expect(!done.usage.isReported, "and so is the failed command's: \(done.usage)")
        #expect(events.last?.type == "command_failed")
    }

    @Test func withoutStreamingTheSameCommandGetsNoDeltas() async throws {
        let provider = ScriptedProvider(script: ["m": [.answer("all at once")]])
        var seen: [PipelineEvent] = []
        let box = Mutex<[PipelineEvent]>([])
        let done = try await engine(provider).run(command(prompts: ["go"]), observer: { event in box.withLock { $0.append(event) } })
        seen = box.withLock { $0 }
        checkShape(seen)
        #expect(done.succeeded)
        #expect(!seen.contains { $0.type == "text_delta" })
        #expect(seen.contains { if case .callFinished(let r) = $0.kind { r.text == "all at once" } else { false } })
    }

    /// A fan-out's calls record concurrently: sequence numbers still follow recording order.
    @Test func concurrentCallsRecordStrictlyIncreasingSequenceNumbers() async throws {
        let provider = ScriptedProvider()
        let seqs = Mutex<[Int]>([])
        let plan = ExecutionPlan(calls: (0..<64).map { APICall(model: "m", parts: [.text("p\($0)")]) })
        let done = try await engine(provider).run(PlannedCommand(id: "fan", plan: plan), streaming: true) { event in seqs.withLock { $0.append(event.seq) } }
        #expect(done.succeeded)
        let recorded = seqs.withLock { $0 }
        #expect(recorded == Array(0..<recorded.count))
        let expected = 1 + 2 + 64 * 3 + 2 + 1  // started, generate stage, 64 × (attempt, delta, finished), telemetry stage, terminal
        #expect(recorded.count == expected)
    }

    /// Telemetry is the fold of the log: folding the kept events again gives the same figures.
    /// Reading the summary finishes the log's own fold in place: reading again, or after more
    /// events, gives what a fresh fold of every event would, and a summary already read is a
    /// value that later events do not change.
    @Test func readingTheSummaryTwiceOrBetweenEventsIsTheFoldOfEverything() {
        let clock = ManualClock()
        let log = EventLog(commandID: "c", provider: "p", clock: clock)
        let answer = CallResponse(callIndex: 0, text: "hi", model: "m", finishReason: "stop", usage: Usage(promptTokens: 2, completionTokens: 3))
        log.record(.attemptStarted(call: 0, attempt: 1, model: "m", cached: false))
        log.record(.callFinished(answer))
        log.record(.attemptStarted(call: 1, attempt: 1, model: "m", cached: false))
        log.record(.textDelta(call: 1, text: "par"))
        let withPartials = log.summary(partials: true)
        #expect(withPartials.partialResponses.map(\.text) == ["hi", "par"])
        clock.advance(by: .milliseconds(5))
        let plain = log.summary()
        #expect(plain.partialResponses.isEmpty, "partials are only for the summary that asks for them")
        #expect(plain.telemetry.durations.total == .milliseconds(5))
        #expect(withPartials.telemetry.durations.total == .zero, "an earlier summary is a value: unchanged")
        log.record(.attemptStarted(call: 1, attempt: 2, model: "m", cached: false))
        log.record(.callFinished(CallResponse(callIndex: 1, text: "part", model: "m", finishReason: "stop", usage: Usage(promptTokens: 1, completionTokens: 1))))
        let last = log.summary()
        #expect(last.telemetry.calls.map(\.attempts) == [1, 2])
        #expect(plain.telemetry.calls.map(\.attempts) == [1, 1], "events after a summary do not reach it")
        #expect(last.usage == Usage(promptTokens: 3, completionTokens: 4))
    }

    /// The telemetry stage hands the log's own fold to the state (no copy); events recorded after
    /// that fold into a copy, so the state's summary stays what it was when the stage ran.
    @Test func aSummaryHandedToTheStateIsNotChangedByLaterEvents() async throws {
        let log = EventLog(commandID: "c", provider: "p", clock: ManualClock())
        log.record(.attemptStarted(call: 0, attempt: 1, model: "m", cached: false))
        let command = PlannedCommand(id: "c", plan: ExecutionPlan(call: APICall(model: "m", parts: [.text("x")])))
        let state = try await TelemetryStage().execute(ExecutionState(command: command), context: StageContext(provider: MockProvider.make(), log: log))
        #expect(state.summary?.telemetry.calls.map(\.attempts) == [1])
        log.record(.attemptStarted(call: 0, attempt: 2, model: "m", cached: false))
        log.record(.attemptStarted(call: 1, attempt: 1, model: "m", cached: false))
        #expect(state.summary?.telemetry.calls.map(\.attempts) == [1], "the state's summary is a value")
        #expect(log.summary().telemetry.calls.map(\.attempts) == [2, 1], "the log goes on folding")
        let again = try await TelemetryStage().execute(state, context: StageContext(provider: MockProvider.make(), log: log))
        #expect(again.summary?.telemetry.calls.map(\.attempts) == [2, 1])
        #expect(state.summary?.telemetry.calls.map(\.attempts) == [1])
    }

    /// A fan-out's calls start in any order; the record lists them by call index all the same
    /// (primary calls, then the fallback's).
    @Test func callTelemetryIsInCallOrderWhateverOrderTheCallsStarted() {
        let kinds: [PipelineEvent.Kind] = [
            .attemptStarted(call: 2, attempt: 1, model: "m", cached: false),
            .attemptStarted(call: 0, attempt: 1, model: "m", cached: false),
            .attemptStarted(call: 1, attempt: 1, model: "m", cached: false),
            .attemptStarted(call: 0, attempt: 2, model: "m", cached: false),
            .fallbackStarted(model: "f", primaryError: APIError(.providerError, "x")),
            .attemptStarted(call: 0, attempt: 1, model: "f", cached: false),
        ]
        let entries = kinds.enumerated().map { EventLog.Entry(seq: $0.offset, elapsed: .zero, kind: $0.element) }
        let calls = LogSummary(entries, provider: "p", total: .zero).telemetry.calls
        #expect(calls.map(\.callIndex) == [0, 1, 2, 0])
        #expect(calls.map(\.attempts) == [2, 1, 1, 1])
    }

    @Test func telemetryIsTheFoldOfTheLog() async throws {
        let provider = ScriptedProvider(script: ["m": [.fail(unavailable), .answer("ok")]])
        let box = Mutex<[PipelineEvent]>([])
        let plan = ExecutionPlan(calls: [APICall(model: "m", parts: [.text("a")]), APICall(model: "n", parts: [.text("b")])])
        let done = try await engine(provider).run(PlannedCommand(id: "fold", plan: plan)) { event in box.withLock { $0.append(event) } }
        let events = box.withLock { $0 }
        let entries = events.map { EventLog.Entry(seq: $0.seq, elapsed: $0.elapsed, kind: $0.kind) }
        let refolded = LogSummary(entries, provider: "scripted", total: done.telemetry.durations.total)
        #expect(refolded.telemetry.calls == done.telemetry.calls)
        #expect(done.telemetry.calls.map(\.attempts) == [2, 1])
        let usage = try done.result.get().usage
        #expect(refolded.usage == usage)
        #expect(refolded.telemetry.durations[GenerateStage.name] == done.telemetry.durations[GenerateStage.name])
    }

    /// Unread, the events every call records (`stage_finished`, `attempt_started`,
    /// `call_finished`) are folded without being built; the telemetry is the same as when an
    /// observer reads every event.
    @Test func foldingUnreadEventsGivesWhatReadingThemGives() async throws {
        let plan = ExecutionPlan(calls: [APICall(model: "m", parts: [.text("a")]), APICall(model: "n", parts: [.text("b")])])
        func run(observed: Bool) async throws -> CommandOutcome {
            let provider = ScriptedProvider(script: ["m": [.fail(unavailable), .answer("ok")], "n": [.answer("fine")]])
            let ignore: @Sendable (PipelineEvent) -> Void = { _ in }
            let observer = observed ? ignore : nil
            return try await engine(provider).run(PlannedCommand(id: "f", plan: plan), observer: observer)
        }
        let plain = try await run(observed: false)
        let observed = try await run(observed: true)
        #expect(plain.telemetry.calls == observed.telemetry.calls)
        #expect(plain.telemetry.calls.map(\.attempts) == [2, 1])
        #expect(try plain.result.get().usage == observed.result.get().usage)
        #expect(try plain.result.get().usage.totalTokens > 0)
        #expect(plain.telemetry.durations.stages.map(\.name) == ["generate"])
        #expect(observed.telemetry.durations.stages.map(\.name) == ["generate"])
        #expect(plain.telemetry.durations[GenerateStage.name] > .zero)
    }

    /// A one-call command hands its response to the fold as the array the state holds: read or
    /// unread, the fold has the same usage and calls, and a stage failing after the call still
    /// leaves the response as a partial one.
    @Test func aOneCallCommandFoldsTheSameReadOrUnread() async throws {
        struct Fail: ExecutionStage {
            var name: String { "fail" }
            func applies(to state: ExecutionState) -> Bool { !state.responses.isEmpty }
            func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState {
                throw APIError(.internal, "after the call")
            }
        }
        let ignore: @Sendable (PipelineEvent) -> Void = { _ in }
        for failing in [false, true] {
            let generate = GenerateStage(calls: EngineConfiguration().callChain(retrier: Retrier()))
            let stages: [any ExecutionStage] = failing ? [generate, Fail(), TelemetryStage()] : [generate, TelemetryStage()]
            var outcomes: [CommandOutcome] = []
            for observer in [nil, ignore] {
                let provider = ScriptedProvider(script: ["m": [.answer("ok")]])
                let engine = PipelineEngine(provider: provider, stages: stages)
                outcomes.append(await engine.run(PlannedCommand(id: "one", plan: ExecutionPlan(call: APICall(model: "m", parts: [.text("a")]))), observer: observer))
            }
            let (plain, observed) = (outcomes[0], outcomes[1])
            #expect(plain.telemetry.calls == observed.telemetry.calls && plain.telemetry.calls.map(\.attempts) == [1])
            #expect(plain.usage == observed.usage && plain.usage.totalTokens > 0)
            if failing {
                #expect(plain.partialResponses.map(\.text) == ["ok"] && observed.partialResponses.map(\.text) == ["ok"])
            } else {
                #expect(try plain.result.get().responses.map(\.text) == ["ok"])
            }
        }
    }

    /// Time is read once per stage boundary: when the command starts, when its first stage
    /// starts, and when each stage ends (a stage's end is the next one's start); the telemetry
    /// stage, an ordinary stage, reads it once more for the total it folds. Each reading here is
    /// a millisecond later than the one before.
    @Test func theClockIsReadOncePerStageBoundary() async throws {
        final class TickingClock: PipelineClock {
            let ticks = Mutex(0)
            var now: Duration { .milliseconds(ticks.withLock { $0 += 1; return $0 }) }
            func sleep(until deadline: Duration) async throws {}
        }
        let clock = TickingClock()
        let engine = PipelineEngine(provider: MockProvider.make(), stages: [GenerateStage(), TelemetryStage()], clock: clock)
        let finalized = try await engine.execute(PlannedCommand(id: "t", plan: ExecutionPlan(call: APICall(model: "m", parts: [.text("a")])))).get()
        #expect(clock.ticks.withLock { $0 } == 5, "command start, generate start, generate end (telemetry start), the fold's total, telemetry end")
        #expect(finalized.telemetry.durations[GenerateStage.name] == .milliseconds(1))
        #expect(finalized.telemetry.durations.total == .milliseconds(3))
        #expect(finalized.telemetry.durations.stages.map(\.name) == ["generate"], "the telemetry stage's own time ends after the fold was taken")
    }

    /// Exactly as a user writes it: a plain `for await … { break }` in a function that goes on,
    /// the sequence still held. The command must end `cancelled` at once, not run to success.
    @Test func breakingOutOfTheLoopCancelsTheCommand() async throws {
        let clock = ManualClock()
        let sink = InMemoryTelemetrySink()
        let provider = MockProvider.make(MockConfiguration(latency: .seconds(60), clock: clock))
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock, telemetrySinks: [sink]))

        let events = engine.events(for: command(prompts: ["slow"]))
        var seen: [String] = []
        for await event in events {
            seen.append(event.type)
            #expect(await clock.waitForSleepers(1), "the call is under way")
            break
        }
        // The function goes on, `events` still in scope. The command is over, cancelled (bounded wait).
        var polls = 0
        while sink.records.isEmpty && polls < 1_000_000 {
            await Task.yield()
            polls += 1
        }
        #expect(seen == ["command_started"])
        #expect(clock.sleeperCount == 0, "the call's wait was cancelled")
        let record = try #require(sink.records.first, "the command ended without the clock moving")
        #expect(record.failure?.kind == .cancelled)
        withExtendedLifetime(events) {}
    }

    /// One reader: the first loop sees the whole command; a second loop over the same sequence
    /// (here, after the first finished) ends at once and runs nothing.
    @Test func aSecondLoopOverTheSameEventsSeesNothingAndRunsNothing() async throws {
        let provider = ScriptedProvider(script: ["m": [.answer("once")]])
        let events = try engine(provider).events(for: command(prompts: ["go"]))
        var first: [String] = []
        for await event in events { first.append(event.type) }
        var second: [String] = []
        for await event in events { second.append(event.type) }
        #expect(first.first == "command_started" && first.last == "command_succeeded")
        #expect(second.isEmpty)
        #expect(provider.requests.count == 1)
    }

    /// Two tasks reading one sequence: one gets every event, the other none (never a split).
    @Test func twoReadersOfOneSequenceNeverSplitItsEvents() async throws {
        let provider = ScriptedProvider(script: ["m": [.answer("a b c d e f")]])
        let events = try engine(provider).events(for: command(prompts: ["go"]))
        async let a = collect(events)
        async let b = collect(events)
        let counts = await [a.count, b.count].sorted()
        #expect(counts[0] == 0)
        #expect(counts[1] > 6)
        #expect(provider.requests.count == 1)
    }

    /// Made and dropped without a loop: nothing runs.
    @Test func eventsNeverReadRunNothing() async throws {
        let provider = ScriptedProvider(script: ["m": [.answer("unwanted")]])
        let engine = try engine(provider)
        _ = engine.events(for: command(prompts: ["go"]))
        let events = engine.events(for: command(prompts: ["go"]))
        for _ in 0..<1_000 { await Task.yield() }
        #expect(provider.requests.isEmpty)
        withExtendedLifetime(events) {}
    }

    @Test func stoppingTheEventStreamCancelsTheCommand() async throws {
        let clock = ManualClock()
        let provider = MockProvider.make(MockConfiguration(latency: .seconds(60), clock: clock))
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock))
        let stream = engine.events(for: command(prompts: ["slow"]))
        let consumer = Task {
            var types: [String] = []
            for await event in stream { types.append(event.type) }
            return types
        }
        await clock.waitForSleepers(1)
        consumer.cancel()
        // The command's sleep is cancelled with it (bounded: a regression fails, it does not hang).
        var polls = 0
        while clock.sleeperCount > 0 && polls < 1_000_000 {
            await Task.yield()
            polls += 1
        }
        #expect(clock.sleeperCount == 0, "the command stopped when its reader did")
        let seen = await consumer.value
        #expect(seen.first == "command_started")
    }
}

/// The chain is folded once, in order, and skips units that do not apply.
@Suite struct ChainTests {
    final class Trail: Sendable {
        let names = Mutex<[String]>([])
    }

    struct Tag: ChainUnit {
        let name: String
        let log: Trail
        var skip = false
        func applies(to input: Int) -> Bool { !skip }
        func handle(_ input: Int, next: Next<Int, [String]>) async -> [String] {
            log.names.withLock { $0.append(name) }
            return [name] + (await next(input + 1))
        }
    }

    @Test func unitsRunOutermostFirstAndTheTerminalLast() async {
        let log = Trail()
        let chain = Chain<Int, [String]>([Tag(name: "a", log: log), Tag(name: "b", log: log, skip: true), Tag(name: "c", log: log)]) { depth in
            ["end at \(depth)"]
        }
        #expect(await chain(0) == ["a", "c", "end at 2"])
        #expect(log.names.withLock { $0 } == ["a", "c"])
    }
}

/// Issue 21 class 8: in events mode (an observer) a streamed answer is not held a second time
/// as kept deltas; `keepingEvents` still keeps them.
@Suite struct EventLogMemoryTests {
    @Test func anObserverSeesEveryDeltaButTheLogKeepsNone() {
        let seen = Mutex(0)
        let observed = EventLog(commandID: "c", provider: "p", clock: ManualClock(), observer: { event in
            if case .textDelta(_, let text) = event.kind { seen.withLock { $0 += text.utf8.count } }
        })
        let big = String(repeating: "x", count: 1 << 20)
        for _ in 0..<4 { observed.record(.textDelta(call: 0, text: big)) }
        #expect(seen.withLock { $0 } == 4 << 20)
        #expect(observed.entries.isEmpty)
        let kept = EventLog(commandID: "c", provider: "p", clock: ManualClock(), keepingEvents: true)
        kept.record(.textDelta(call: 0, text: "piece"))
        #expect(kept.entries.count == 1)
    }
}
