import CommandPipeline
import CommandPipelineTesting
import Foundation
import Synchronization
import Testing

/// A deployment's server, in memory: answers, fails with a 500, or holds the call until the
/// clock passes a time; counts what it was sent. `headers` are reported as an HTTP client does.
final class Backend: GenerationCapability {
    enum Mode: Sendable { case ok, fail500, invalid, rateLimited, hang }
    let providerName: String
    let mode: Mutex<Mode>
    let requests = Atomic<Int>(0)
    let headers: Mutex<[String: String]>
    /// Where answers' headers go, as an HTTP client's (`ProviderOptions.responseHeaders`).
    let relay = ResponseHeadersRelay()

    /// The clock a hanging call waits on (an hour, or until cancelled).
    let clock: ManualClock?

    init(_ provider: String = "openai", mode: Mode = .ok, headers: [String: String] = [:], clock: ManualClock? = nil) {
        self.clock = clock
        providerName = provider
        self.mode = Mutex(mode)
        self.headers = Mutex(headers)
    }

    var count: Int { requests.load(ordering: .relaxed) }
    func set(_ m: Mode) { mode.withLock { $0 = m } }

    func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        requests.add(1, ordering: .relaxed)
        relay.report(headers.withLock { $0 })
        switch mode.withLock({ $0 }) {
        case .ok: return GenerationResponse(text: "from \(request.model)", model: request.model, usage: Usage(promptTokens: 1, completionTokens: 1))
        case .fail500: throw APIError(.providerError, "HTTP 500", provider: providerName, retryable: true, code: "500")
        case .invalid: throw APIError(.providerError, "HTTP 400 bad request", provider: providerName, retryable: false, code: "400")
        case .rateLimited: throw APIError(.rateLimited, "HTTP 429", provider: providerName, retryable: true, retryAfter: .seconds(30))
        case .hang:
            try await (clock ?? ManualClock()).sleep(for: .seconds(3600))
            throw APIError(.providerError, "no answer in an hour", provider: providerName, retryable: true, code: "hung")
        }
    }
}

/// A count shared by tasks.
final class SharedCount: Sendable {
    private let value = Atomic<Int>(0)
    func add() { value.add(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

@Suite struct RouterTests {
    static func deployment(_ name: String, provider: String = "openai", weight: Int = 1, rpm: Int? = nil) -> Deployment {
        Deployment(name: name, provider: provider, model: "\(name)-model", weight: weight, requestsPerMinute: rpm)
    }

    static func engine(
        _ backends: [(Deployment, Backend)], clock: ManualClock, fallback: any GenerationCapability = Backend("mock"), maxAttempts: Int = 3,
        breaker: BreakerSettings = BreakerSettings(failureThreshold: 3, cooldown: .seconds(5), maxCooldown: .seconds(40)), seed: UInt64 = 7,
        callTimeout: Duration? = nil, commandTimeout: Duration? = nil
    ) throws -> (PipelineEngine, Router) {
        let configuration = RouterConfiguration(models: ["fast": backends.map(\.0)], breaker: breaker)
        var adapters: [String: any GenerationCapability] = [:]
        var relays: [String: ResponseHeadersRelay] = [:]
        for (d, b) in backends {
            adapters[d.name] = b
            relays[d.name] = b.relay
        }
        let router = try Router(configuration: configuration, adapters: adapters, relays: relays, clock: clock, seed: seed)
        var engineConfiguration = EngineConfiguration(
            clock: clock, retryPolicy: RetryPolicy(maxAttempts: maxAttempts, baseDelay: .zero, jitter: 0), callTimeout: callTimeout, commandTimeout: commandTimeout)
        engineConfiguration.router = router
        return (try PipelineEngine(provider: fallback, configuration: engineConfiguration), router)
    }

    @Test func trafficSplitsByWeightWithinTenPercentOver1000Calls() async throws {
        let clock = ManualClock()
        let a = Backend(), b = Backend(), c = Backend()
        let (engine, _) = try Self.engine([(Self.deployment("a", weight: 5), a), (Self.deployment("b", weight: 3), b), (Self.deployment("c", weight: 2), c)], clock: clock)
        for i in 0..<1000 {
            let result = await engine.execute(command("c\(i)", model: "fast"))
            #expect(result.success != nil)
        }
        for (backend, share) in [(a, 0.5), (b, 0.3), (c, 0.2)] {
            #expect(abs(Double(backend.count) / 1000 - share) <= share * 0.1, "\(backend.count) calls for a share of \(share)")
        }
    }

    @Test func eachResponseNamesItsDeploymentProviderAndModel() async throws {
        let clock = ManualClock()
        let (engine, _) = try Self.engine([(Self.deployment("east", provider: "anthropic"), Backend("anthropic"))], clock: clock)
        let outcome = await engine.run(command("x", model: "fast"))
        let response = try #require(outcome.result.success?.responses.first)
        #expect(response.deployment == "east")
        #expect(response.provider == "anthropic")
        #expect(response.model == "east-model")
    }

    @Test func aModelNotInTheFileGoesToTheEnginesProvider() async throws {
        let clock = ManualClock()
        let routed = Backend(), other = Backend("mock")
        let (engine, _) = try Self.engine([(Self.deployment("a"), routed)], clock: clock, fallback: other)
        let response = try #require(await engine.execute(command("x", model: "plain")).success?.responses.first)
        #expect(response.deployment == nil)
        #expect(other.count == 1 && routed.count == 0)
    }

    @Test func aFallbackCallNamingALogicalModelIsRouted() async throws {
        let clock = ManualClock()
        let down = Backend("mock", mode: .fail500), routed = Backend("anthropic")
        let (engine, _) = try Self.engine([(Self.deployment("claude", provider: "anthropic"), routed)], clock: clock, fallback: down)
        let outcome = await engine.run(command("x", model: "plain", fallback: APICall(model: "fast", parts: [.text("again")])))
        let response = try #require(outcome.result.success?.responses.first)
        #expect(outcome.telemetry.usedFallback)
        #expect(response.deployment == "claude" && response.provider == "anthropic" && response.model == "claude-model")
        #expect(down.count == 3 && routed.count == 1)
    }

    @Test func aFailingDeploymentGetsAHandfulOfRequestsPerCooldownAndEveryCommandSucceeds() async throws {
        let clock = ManualClock()
        let bad = Backend(mode: .fail500), good = Backend()
        let (engine, router) = try Self.engine([(Self.deployment("bad", weight: 10), bad), (Self.deployment("good"), good)], clock: clock)
        let opened = SharedCount()
        for i in 0..<200 {
            let outcome = await engine.run(command("c\(i)", model: "fast"), observer: { event in
                if case .deploymentOpened(let name, let cooldown) = event.kind, name == "bad", cooldown == .seconds(5) { opened.add() }
            })
            #expect(outcome.succeeded)
        }
        #expect(opened.count == 1, "one deployment_opened event, in the command whose failure opened it")
        // Three failures open it (the retries went to "good"); nothing more while it cools.
        #expect(bad.count == 3)
        #expect(good.count == 200)
        // Each cooldown lets one probe through; its failure reopens the breaker for twice as long.
        for (round, cooldown) in [5, 10, 20, 40, 40].enumerated() {
            clock.advance(by: .seconds(cooldown))
            for i in 0..<50 { #expect(await engine.execute(command("r\(round)-\(i)", model: "fast")).success != nil) }
            #expect(bad.count == 3 + round + 1, "round \(round)")
        }
        let stats = try #require(router.stats().first { $0.name == "bad" })
        #expect(stats.openings == 6)
        #expect(stats.state == "open")
    }

    @Test func aReturningDeploymentIsProbedClosedAndUsedAgain() async throws {
        let clock = ManualClock()
        let flaky = Backend(mode: .fail500), good = Backend()
        let (engine, router) = try Self.engine([(Self.deployment("flaky"), flaky), (Self.deployment("good"), good)], clock: clock)
        for i in 0..<20 { _ = await engine.execute(command("c\(i)", model: "fast")) }
        #expect(router.stats().first { $0.name == "flaky" }?.state == "open")
        flaky.set(.ok)
        clock.advance(by: .seconds(5))
        let events = Mutex<[String]>([])
        let outcome = await engine.run(command("probe", model: "fast"), observer: { event in
            switch event.kind {
            case .attemptRouted(_, let name, _, _): events.withLock { $0.append("routed \(name)") }
            case .deploymentClosed(let name, let open): events.withLock { $0.append("closed \(name) \(open)") }
            default: break
            }
        })
        #expect(outcome.succeeded)
        #expect(events.withLock { $0 } == ["routed flaky", "closed flaky 5.0 seconds"])
        let before = flaky.count
        for i in 0..<100 { _ = await engine.execute(command("after\(i)", model: "fast")) }
        #expect(flaky.count - before > 30, "the returned deployment takes its share again")
        #expect(router.stats().first { $0.name == "flaky" }?.state == "closed")
    }

    @Test func whenEveryDeploymentCoolsACallWaitsForTheFirstBack() async throws {
        let clock = ManualClock()
        let only = Backend(mode: .fail500)
        let (engine, _) = try Self.engine([(Self.deployment("only"), only)], clock: clock, maxAttempts: 3)
        #expect(await engine.execute(command("first", model: "fast")).failure?.kind == .providerError)
        #expect(only.count == 3)
        only.set(.ok)
        let task = Task { await engine.execute(command("second", model: "fast")) }
        #expect(await clock.waitForSleepers(1))
        #expect(only.count == 3, "nothing is sent while the only deployment cools")
        clock.advance(by: .seconds(5))
        let response = try #require(await task.value.success?.responses.first)
        #expect(response.deployment == "only")
        #expect(only.count == 4)
    }

    @Test func aRefusedCommandDoesNotOpenTheBreaker() async throws {
        let clock = ManualClock()
        let picky = Backend(mode: .invalid)
        let (engine, router) = try Self.engine([(Self.deployment("picky"), picky)], clock: clock)
        for i in 0..<10 { #expect(await engine.execute(command("c\(i)", model: "fast")).failure?.retryable == false) }
        #expect(picky.count == 10)
        #expect(router.stats()[0].openings == 0)
        #expect(router.stats()[0].failures["provider_error:400"] == 10)
    }

    @Test func aDeploymentOnAnotherProviderServesWhenTheFirstIsDown() async throws {
        let clock = ManualClock()
        let openai = Backend("openai", mode: .fail500), anthropic = Backend("anthropic")
        let (engine, _) = try Self.engine(
            [(Self.deployment("primary", weight: 1000), openai), (Self.deployment("claude", provider: "anthropic", weight: 1), anthropic)], clock: clock)
        for i in 0..<30 {
            let response = try #require(await engine.execute(command("c\(i)", model: "fast")).success?.responses.first)
            #expect(response.provider == "anthropic" && response.deployment == "claude")
        }
    }

    @Test func noDeploymentExceedsItsRPM() async throws {
        let clock = ManualClock()
        let a = Backend(), b = Backend()
        let (engine, router) = try Self.engine([(Self.deployment("a", rpm: 10), a), (Self.deployment("b", rpm: 20), b)], clock: clock)
        let done = SharedCount()
        let total = 120
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<total {
                group.addTask {
                    if await engine.execute(command("c\(i)", model: "fast")).success != nil { done.add() }
                }
            }
            // Drive the clock a second at a time until every command is done (bounded).
            group.addTask {
                var steps = 0
                while done.count < total && steps < 2_000 {
                    _ = await clock.waitForSleepers(1, maxYields: 20_000)
                    clock.advance(by: .seconds(1))
                    steps += 1
                }
            }
        }
        #expect(done.count == total)
        let stats = router.stats()
        #expect(stats.first { $0.name == "a" }!.peakRequestsPerMinute <= 10)
        #expect(stats.first { $0.name == "b" }!.peakRequestsPerMinute <= 20)
        #expect(a.count + b.count == total)
        #expect(clock.now >= .seconds(180), "120 calls at 30 a minute take at least three minutes")
    }

    @Test func headersThatSayTheBudgetIsSpentHoldTheDeploymentUntilItsReset() async throws {
        let clock = ManualClock()
        let spent = Backend(headers: ["x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"]), fresh = Backend()
        let (engine, _) = try Self.engine([(Self.deployment("spent", weight: 1000), spent), (Self.deployment("fresh", weight: 1), fresh)], clock: clock)
        for i in 0..<20 { #expect(await engine.execute(command("c\(i)", model: "fast")).success != nil) }
        #expect(spent.count == 1, "after its answer said 0 remaining, nothing more until the reset")
        clock.advance(by: .seconds(20))
        _ = await engine.execute(command("later", model: "fast"))
        #expect(spent.count == 2)
    }

    @Test func oneDeployments429SlowsThatDeploymentNotTheRun() async throws {
        let clock = ManualClock()
        let throttled = Backend(mode: .rateLimited), other = Backend()
        let (engine, _) = try Self.engine([(Self.deployment("throttled", weight: 1000), throttled), (Self.deployment("other"), other)], clock: clock)
        let done = SharedCount()
        // Nothing here advances the clock: had the 429 paused the engine's limiter, the calls
        // would wait on it. They must all be answered by "other" without a wait.
        let task = Task {
            for i in 0..<20 where await engine.execute(command("c\(i)", model: "fast")).success?.responses.first?.deployment == "other" { done.add() }
        }
        var yields = 0
        while done.count < 20 && yields < 200_000 {
            await Task.yield()
            yields += 1
        }
        #expect(done.count == 20, "every command answered by the other deployment without waiting for the clock")
        #expect(throttled.count == 1, "its limiter holds the throttled deployment until its Retry-After")
        task.cancel()  // ends anything that did wait, so the test ends either way
        await task.value
    }

    @Test func headerLimitsAreParsedAndRangeChecked() {
        let openai = HeaderLimits.parse(["x-ratelimit-remaining-requests": "12", "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-requests": "1m30.5s", "x-ratelimit-reset-tokens": "20ms"])
        #expect(openai == HeaderLimits(remainingRequests: 12, remainingTokens: 900, resetRequests: .seconds(60), resetTokens: .milliseconds(20)))
        #expect(HeaderLimits.parse(["x-ratelimit-reset-requests": "6s"])?.resetRequests == .seconds(6))
        let hostile = HeaderLimits.parse(["x-ratelimit-remaining-requests": "-5", "retry-after": "1e20", "x-ratelimit-reset-requests": "99999999999h"])
        #expect(hostile?.remainingRequests == nil && hostile?.retryAfter == nil && hostile?.resetRequests == .seconds(60))
        #expect(HeaderLimits.parse(["x-ratelimit-remaining-requests": "99999999999999999999999"])?.remainingRequests == 1_000_000_000_000)
        #expect(HeaderLimits.parse(["retry-after": "7"])?.retryAfter == .seconds(7))
        // Retry-After has one reader (`RetryHint`): its every form, then pinned to a minute here.
        let now = Date(timeIntervalSince1970: 1_000_000)  // Mon, 12 Jan 1970 13:46:40 GMT
        #expect(HeaderLimits.parse(["retry-after": "Mon, 12 Jan 1970 13:46:50 GMT"], now: now)?.retryAfter == .seconds(10))
        #expect(HeaderLimits.parse(["retry-after-ms": "1500", "retry-after": "9"])?.retryAfter == .milliseconds(1500))
        #expect(HeaderLimits.parse(["llm_provider-retry-after": "2.5"])?.retryAfter == .milliseconds(2500))
        #expect(HeaderLimits.parse(["retry-after": "7200"])?.retryAfter == .seconds(60))
        #expect(HeaderLimits.parse(["retry-after": "-1"]) == nil && HeaderLimits.parse(["retry-after": "inf"]) == nil)
        #expect(HeaderLimits.parse(["content-type": "application/json"]) == nil)
        let anthropic = HeaderLimits.parse(["anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:10Z"], now: Date(timeIntervalSince1970: 1_767_225_600))
        #expect(anthropic?.remainingRequests == 0 && anthropic?.resetRequests == .seconds(10))
        #expect(anthropic?.hold(othersInFlight: 0) == .seconds(10))
        #expect(HeaderLimits(remainingRequests: 5).hold(othersInFlight: 2) == nil)
    }

    @Test func theBreakerNeverShortensARunningCooldownAndDoublesToItsCap() {
        var breaker = CircuitBreaker(settings: BreakerSettings(failureThreshold: 2, cooldown: .seconds(1), maxCooldown: .seconds(3)))
        #expect(breaker.failed(now: .zero) == nil)
        #expect(breaker.failed(now: .zero) == .seconds(1))
        #expect(breaker.failed(now: .milliseconds(500)) == nil, "a late failure of a call in flight")
        #expect(breaker.state == .open(until: .seconds(1)))
        #expect(breaker.admission(now: .seconds(1)) == .probe)
        breaker.startProbe()
        #expect(breaker.admission(now: .seconds(1)) == .refused(until: nil), "one probe at a time")
        #expect(breaker.failed(now: .seconds(1)) == .seconds(2))
        breaker.startProbe()
        #expect(breaker.failed(now: .seconds(3)) == .seconds(3), "doubled, capped at 3 s")
        breaker.startProbe()
        #expect(breaker.succeeded(now: .seconds(6)) == .seconds(6))
        #expect(breaker.state == .closed && breaker.openings == 3)
        #expect(breaker.failed(now: .seconds(7)) == nil)
        #expect(breaker.failed(now: .seconds(7)) == .seconds(1), "closing resets the cooldown")
    }

    @Test func theDeploymentsFileIsStrictAndNamesThePlace() {
        let env = ["KEY_EAST": "sk-east-0123456789"]
        func problem(_ text: String) -> String? {
            if case .failure(let p) = DeploymentsFile.parse(Array(text.utf8), environment: env) { return p.description }
            return nil
        }
        let good = #"{"models": {"fast": [{"name": "east", "provider": "openai", "base_url": "https://e.example/v1", "model": "gpt-4o-mini", "api_key_env": "KEY_EAST", "weight": 2, "rpm": 5000, "tpm": 2000000, "max_concurrency": 128}, {"name": "claude", "provider": "anthropic", "model": "claude-haiku-4-5"}]}, "breaker": {"failures": 5, "cooldown_ms": 1000}}"#
        guard case .success(let configuration) = DeploymentsFile.parse(Array(good.utf8), environment: env) else { Issue.record("valid file refused"); return }
        #expect(configuration.models["fast"]?.map(\.name) == ["east", "claude"])
        #expect(configuration.models["fast"]?[0].requestsPerMinute == 5000 && configuration.models["fast"]?[0].apiKeyVariable == "KEY_EAST")
        #expect(configuration.breaker.failureThreshold == 5 && configuration.breaker.cooldown == .seconds(1))
        #expect(problem(#"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m", "colour": 1}]}}"#)?.hasPrefix("models.fast[0].colour: unknown key") == true)
        #expect(problem(#"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m"}], "slow": [{"name": "a", "provider": "openai", "model": "n"}]}}"#)?.hasPrefix("models.slow[0].name: duplicate deployment name") == true)
        #expect(problem(#"{"models": {"fast": []}}"#)?.hasPrefix("models.fast: no deployments") == true)
        #expect(problem(#"{"models": {}}"#)?.hasPrefix("models: no logical model") == true)
        #expect(problem(#"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m", "api_key_env": "NOT_SET_ANYWHERE"}]}}"#)?.hasPrefix("models.fast[0].api_key_env: $NOT_SET_ANYWHERE is not set") == true)
        #expect(problem(#"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m", "base_url": "ftp://x"}]}}"#)?.hasPrefix("models.fast[0].base_url:") == true)
        #expect(problem(#"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m", "weight": 0}]}}"#)?.hasPrefix("models.fast[0].weight:") == true)
        #expect(problem(#"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m", "rpm": 99999999999999999}]}}"#)?.hasPrefix("models.fast[0].rpm:") == true)
        #expect(problem(#"{"models": {"fast": [{"name": "a", "name": "b", "provider": "openai", "model": "m"}]}}"#) != nil)
        #expect(problem(#"{"models": {"fast": [{"name": "a", "provider": "openai"}]}}"#)?.contains("needs \"model\"") == true)
    }

    /// A key pasted where its variable's name belongs is refused without being printed.
    @Test func anAPIKeyEnvThatIsNotAVariableNameIsRefusedWithoutEchoingIt() {
        let pasted = "sk-proj-PASTEDKEY0123456789"
        for value in [pasted, "1ABC", "", "A-B", String(repeating: "A", count: 129)] {
            let text = #"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m", "api_key_env": "\#(value)"}]}}"#
            guard case .failure(let problem) = DeploymentsFile.parse(Array(text.utf8), environment: [value: "set-0123456789abc"]) else {
                Issue.record("'\(value)' accepted as a variable name"); continue
            }
            #expect(problem.description.hasPrefix("models.fast[0].api_key_env: not an environment variable name"), "\(problem)")
            #expect(value.isEmpty || !problem.description.contains(value), "the value is not echoed: \(problem)")
        }
        let longest = String(repeating: "A", count: 128)
        let text = #"{"models": {"fast": [{"name": "a", "provider": "openai", "model": "m", "api_key_env": "\#(longest)"}]}}"#
        guard case .success = DeploymentsFile.parse(Array(text.utf8), environment: [longest: "set-0123456789abc"]) else {
            Issue.record("a 128-byte variable name refused"); return
        }
    }

    /// The response cache's endpoint of a routed run tells apart deployments files that differ
    /// in one deployment's base URL (and is the same for the same file).
    @Test func routersDifferingInOneBaseURLGiveDifferentCacheKeys() throws {
        func endpoint(_ baseURL: String) throws -> String {
            var east = Self.deployment("east")
            east.baseURL = baseURL
            let configuration = RouterConfiguration(models: ["fast": [east, Self.deployment("west")]])
            let router = try Router(configuration: configuration, adapters: ["east": Backend("openai"), "west": Backend("openai")], clock: ManualClock())
            return RoutedProvider(router: router, fallback: Backend("mock")).endpoint
        }
        let request = GenerationRequest(model: "fast", parts: [.text("hi")])
        func key(_ baseURL: String) throws -> ResponseCacheKey {
            ResponseCacheKey(provider: "mock", endpoint: try endpoint(baseURL), request: request)
        }
        #expect(try key("https://a.example/v1") != key("https://b.example/v1"))
        #expect(try key("https://a.example/v1") == key("https://a.example/v1"))
        #expect(try endpoint("https://a.example/v1").contains("https://a.example/v1"))
    }

}

/// The router sits outside the per-call timeout (`RoutingUnit` before `CallTimeoutUnit`): an
/// attempt that times out is its deployment's failure, and the wait for a deployment is
/// bounded by the command's deadline, not by the attempt's timeout. The wait is recorded
/// before it happens and the command's lender hears it (the progress line's "waiting on a deployment").
@Suite struct RouterAroundTheCallTimeoutTests {
    final class Seen: BackoffLender {
        let state = Mutex<(events: [PipelineEvent], started: Int, ended: Int)>(([], 0, 0))
        func backoffStarted() {}
        func backoffEnded() async {}
        func deploymentWaitStarted() { state.withLock { $0.started += 1 } }
        func deploymentWaitEnded() { state.withLock { $0.ended += 1 } }
        var waits: [Duration] {
            state.withLock { s in
                s.events.compactMap { event -> Duration? in
                    if case .waiting(_, "deployment", let duration) = event.kind { return duration }
                    return nil
                }
            }
        }
        var counts: [Int] { state.withLock { [$0.started, $0.ended] } }
    }

    @Test func aTimedOutAttemptIsItsDeploymentsFailureAndOpensItsBreaker() async throws {
        let clock = ManualClock()
        let slow = Backend(mode: .hang, clock: clock), good = Backend()
        let (engine, router) = try RouterTests.engine(
            [(RouterTests.deployment("slow", weight: 1000), slow), (RouterTests.deployment("good", weight: 1), good)], clock: clock, callTimeout: .seconds(1))
        let opened = SharedCount()
        let done = SharedCount()
        let task = Task {
            var outcomes: [CommandOutcome] = []
            for i in 0..<6 {
                outcomes.append(await engine.run(command("c\(i)", model: "fast"), observer: { event in
                    if case .deploymentOpened("slow", .seconds(5)) = event.kind { opened.add() }
                }))
                done.add()
            }
            return outcomes
        }
        await drive(clock, until: { done.count == 6 }, step: .seconds(1))
        let outcomes = await task.value
        #expect(outcomes.allSatisfy { $0.succeeded }, "each retry went to the healthy deployment")
        #expect(outcomes.allSatisfy { $0.result.success?.responses.first?.deployment == "good" })
        let stats = try #require(router.stats().first { $0.name == "slow" })
        #expect(stats.failures == ["timeout": 3], "each cut-off attempt counts as a timeout of its deployment, not a cancel")
        #expect(stats.openings == 1 && stats.state == "open")
        #expect(opened.count == 1, "deployment_opened, in the command whose timeout opened it")
        #expect(slow.count == 3, "nothing more while it cools")
        #expect(good.count == 6)
    }

    @Test func theWaitForADeploymentIsRecordedBeforeItAndOutlivesTheCallTimeout() async throws {
        let clock = ManualClock()
        let only = Backend(mode: .fail500)
        let (engine, router) = try RouterTests.engine(
            [(RouterTests.deployment("only"), only)], clock: clock, callTimeout: .seconds(1), commandTimeout: .seconds(30))
        #expect(await engine.execute(command("first", model: "fast")).failure?.kind == .providerError)
        #expect(router.stats()[0].state == "open" && only.count == 3)
        only.set(.ok)
        let seen = Seen()
        let task = Task {
            await BackoffScope.$lender.withValue(seen) {
                await engine.run(command("second", model: "fast"), observer: { event in seen.state.withLock { $0.events.append(event) } })
            }
        }
        // The clock does not move: the wait must be known while it lasts (bounded by a count of yields).
        var yields = 0
        while seen.waits.isEmpty && yields < 1_000_000 {
            await Task.yield()
            yields += 1
        }
        #expect(seen.waits == [.seconds(5)], "recorded with its length (the cooldown left), before it is over")
        #expect(seen.counts == [1, 0], "the lender knows the command waits on a deployment")
        #expect(only.count == 3 && clock.now == .zero)
        // Longer than the one-second call timeout: the wait is not the attempt's.
        await drive(clock, until: { only.count == 4 }, step: .seconds(1))
        let outcome = await task.value
        #expect(outcome.succeeded, "\(String(describing: outcome.error))")
        #expect(outcome.result.success?.responses.first?.deployment == "only")
        #expect(clock.now >= .seconds(5), "sent once the cooldown was over")
        #expect(seen.counts == [1, 1])
        #expect(outcome.telemetry.retries == 0, "one attempt, sent once the deployment came back")
        #expect(outcome.telemetry.retryWait == .seconds(5), "retry_wait_ms counts the wait")
    }

    @Test func theCommandsDeadlineEndsTheWaitForADeployment() async throws {
        let clock = ManualClock()
        let only = Backend(mode: .fail500)
        let (engine, _) = try RouterTests.engine(
            [(RouterTests.deployment("only"), only)], clock: clock, breaker: BreakerSettings(failureThreshold: 3, cooldown: .seconds(60), maxCooldown: .seconds(60)),
            callTimeout: .seconds(1), commandTimeout: .seconds(3))
        #expect(await engine.execute(command("first", model: "fast")).failure?.kind == .providerError)
        only.set(.ok)
        let task = Task { await engine.execute(command("second", model: "fast")) }
        await drive(clock, until: { clock.now >= .seconds(3) }, step: .seconds(1))
        let error = try #require(await task.value.failure)
        #expect(error.kind == .timeout && error.message.contains("deadline"), "\(error)")
        #expect(only.count == 3, "nothing was sent to the cooling deployment")
    }
}

/// `RoutedProvider.streaming` outside the engine: a logical model streams through one of its
/// deployments (chosen and accounted as a call is), any other model through the fallback's.
@Suite struct RoutedStreamingTests {
    static func collect(_ stream: AsyncThrowingStream<GenerationChunk, any Error>) async throws -> [GenerationChunk] {
        var chunks: [GenerationChunk] = []
        for try await chunk in stream { chunks.append(chunk) }
        return chunks
    }

    @Test func aLogicalModelStreamsThroughItsDeployment() async throws {
        let clock = ManualClock()
        let deployment = MockProvider.make(MockConfiguration(capabilities: [.streaming]))
        let configuration = RouterConfiguration(models: ["fast": [Deployment(name: "east", provider: "mock", model: "east-model")]])
        let router = try Router(configuration: configuration, adapters: ["east": deployment], clock: clock, seed: 1)
        let fallback = MockProvider.make(MockConfiguration(capabilities: [.streaming]))
        let streaming = try #require(RoutedProvider(router: router, fallback: fallback).streaming)
        let chunks = try await Self.collect(streaming.stream(GenerationRequest(model: "fast", parts: [.text("hello there")])))
        guard case .completed(let response) = chunks.last else { Issue.record("no final response: \(chunks)"); return }
        #expect(chunks.dropLast().allSatisfy { if case .delta = $0 { true } else { false } } && chunks.count > 1, "the deployment's deltas come through")
        #expect(response.deployment == "east" && response.provider == "mock")
        #expect(response.model == "east-model", "sent as the deployment's model, never the logical name")
        let stats = router.stats()[0]
        #expect(stats.calls == 1 && stats.succeeded == 1, "accounted as a call of the deployment")

        let other = try await Self.collect(streaming.stream(GenerationRequest(model: "plain", parts: [.text("hi")])))
        guard case .completed(let plain) = other.last else { Issue.record("no final response: \(other)"); return }
        #expect(plain.deployment == nil && plain.model == "plain", "a model not in the file streams through the fallback")
        #expect(router.stats()[0].calls == 1)
    }

    /// A deployment that streams one delta, then nothing until its reader goes away; its stream
    /// then just ends (no final response), as a connection cut by the client does.
    struct Stalling: GenerationCapability, StreamingCapability {
        var providerName: String { "openai" }
        let opened = SharedCount()
        func generate(_ request: GenerationRequest) async throws -> GenerationResponse { throw CancellationError() }
        func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> {
            opened.add()
            let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerationChunk.self)
            continuation.yield(.delta("first"))
            return stream
        }
    }

    /// A consumer that stops reading a routed stream, or a cancelled task reading it, is not a
    /// failure of the deployment: with a breaker that opens at the first unhealthy failure, the
    /// deployment stays closed, and the attempt is counted as cancelled.
    @Test(arguments: [false, true])
    func aConsumersCancelFeedsNoBreaker(cancelTheTask: Bool) async throws {
        let stalling = Stalling()
        let configuration = RouterConfiguration(
            models: ["fast": [Deployment(name: "east", provider: "openai", model: "east-model")]],
            breaker: BreakerSettings(failureThreshold: 1, cooldown: .seconds(60), maxCooldown: .seconds(60)))
        let router = try Router(configuration: configuration, adapters: ["east": stalling], clock: ManualClock(), seed: 1)
        let streaming = try #require(RoutedProvider(router: router, fallback: MockProvider.make(MockConfiguration(capabilities: [.streaming]))).streaming)
        let request = GenerationRequest(model: "fast", parts: [.text("q")])
        if cancelTheTask {
            let gotFirst = AsyncStream.makeStream(of: Void.self)
            let reader = Task {
                for try await chunk in streaming.stream(request) {
                    if case .delta = chunk { gotFirst.continuation.yield() }
                }
            }
            for await _ in gotFirst.stream { break }
            reader.cancel()
            _ = await reader.result
        } else {
            // Not kept in a variable: leaving the loop drops the stream's last reference.
            for try await chunk in streaming.stream(request) {
                if case .delta(let text) = chunk {
                    #expect(text == "first")
                    break  // the consumer stops reading
                }
            }
        }
        #expect(await eventually { router.stats()[0].failures.isEmpty == false }, "the attempt ends")
        let stats = router.stats()[0]
        #expect(stats.failures == ["cancelled": 1], "\(stats.failures)")
        #expect(stats.openings == 0 && stats.state == "closed", "a consumer's cancel is not the deployment's failure")
        #expect(stalling.opened.count == 1)
    }

    @Test func aDeploymentThatCannotStreamAnswersWithOneFinalChunkAndFailuresCount() async throws {
        let clock = ManualClock()
        let plain = Backend(), failing = Backend(mode: .fail500)
        let configuration = RouterConfiguration(models: [
            "fast": [Deployment(name: "plain", provider: "openai", model: "plain-model")],
            "down": [Deployment(name: "failing", provider: "openai", model: "failing-model")],
        ])
        let router = try Router(configuration: configuration, adapters: ["plain": plain, "failing": failing], clock: clock, seed: 1)
        let streaming = try #require(RoutedProvider(router: router, fallback: MockProvider.make()).streaming)
        let chunks = try await RoutedStreamingTests.collect(streaming.stream(GenerationRequest(model: "fast", parts: [.text("q")])))
        #expect(chunks.count == 1)
        guard case .completed(let response) = chunks.first else { Issue.record("\(chunks)"); return }
        #expect(response.deployment == "plain" && response.text == "from plain-model")
        await #expect(throws: APIError.self) { _ = try await RoutedStreamingTests.collect(streaming.stream(GenerationRequest(model: "down", parts: [.text("q")]))) }
        #expect(router.stats().first { $0.name == "failing" }?.failures == ["provider_error:500": 1])
        #expect(RoutedProvider(router: router, fallback: Backend("mock")).streaming == nil, "no streaming when the fallback has none")
    }
}
