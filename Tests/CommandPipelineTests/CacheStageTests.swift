import CommandPipeline
import Testing

@Suite struct CacheStageTests {
    let shared: [APIPart] = [.text(String(repeating: "context ", count: 100))]

    /// A provider whose caches have a minimum size this context never reaches.
    struct MinimumSizeProvider: GenerationCapability, CachingCapability {
        let base: RecordingProvider
        var providerName: String { "minimum" }
        func generate(_ request: GenerationRequest) async throws -> GenerationResponse { try await base.generate(request) }
        func createCache(_ context: GenerationRequest, key: String, ttlSeconds: Int) async throws -> CacheReference {
            base.recorder.counts.withLock { $0.cachesCreated += 1 }
            throw APIError(
                .cacheFailed, "the shared context is below the model's minimum (total_token_count=200, min_total_token_count=1024)",
                provider: providerName, code: APIError.cacheBelowMinimumCode)
        }
        func cache(forKey key: String) async throws -> CacheReference? { nil }
    }

    @Test func aContextBelowTheProvidersMinimumRunsUncachedAndSaysWhyOncePerKey() async throws {
        let provider = MinimumSizeProvider(base: RecordingProvider(clock: ManualClock()))
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: ManualClock()))
        for id in ["1", "2", "3"] {
            let finalized = try #require(await engine.execute(command(id, prompts: ["q"], shared: shared, cache: CachePlan())).success)
            let telemetry = try #require(finalized.telemetry.cache)
            #expect(telemetry.id == nil && !telemetry.created && !telemetry.reused)
            #expect(telemetry.uncachedReason?.contains("min_total_token_count=1024") == true)
            var line: [UInt8] = []
            ResultWriter.succeeded(finalized, index: 0, to: &line)
            #expect(String(decoding: line, as: UTF8.self).contains(#""token_count":null,"uncached_reason":"the shared context is below"#))
        }
        // Asked once: the refusal is remembered for the TTL like a cache would be.
        #expect(provider.base.recorder.snapshot.cachesCreated == 1)
        // Every call went out with the shared parts themselves.
        #expect(provider.base.recorder.snapshot.requests.allSatisfy { $0.cache == nil && $0.parts.count == 2 })
    }

    @Test func aCacheThatWasCreatedHasNoUncachedReasonOnTheWire() async throws {
        let provider = CachingProvider(base: RecordingProvider(clock: ManualClock()))
        let finalized = try #require(await PipelineEngine(provider: provider).execute(command(shared: shared, cache: CachePlan())).success)
        #expect(finalized.telemetry.cache?.uncachedReason == nil)
        var line: [UInt8] = []
        ResultWriter.succeeded(finalized, index: 0, to: &line)
        #expect(!String(decoding: line, as: UTF8.self).contains("uncached_reason"))
    }

    @Test func concurrentCommandsWithOneKeyCreateOneCache() async throws {
        let clock = ManualClock()
        let provider = CachingProvider(base: RecordingProvider(clock: clock), createLatency: .milliseconds(100))
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock))
        let commands = (0..<200).map { command("c\($0)", prompts: ["q\($0)"], shared: shared, cache: CachePlan()) }
        let results = try await withThrowingTaskGroup(of: Result<FinalizedCommand, APIError>.self) { group in
            for c in commands { group.addTask { await engine.execute(c) } }
            await clock.waitForSleepers(1)
            // Creation is still pending: every other command is waiting for it, not creating its own.
            clock.advance(by: .milliseconds(100))
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(provider.recorder.snapshot.cachesCreated == 1)
        let telemetry = results.compactMap(\.success).compactMap(\.telemetry.cache)
        #expect(telemetry.count == 200)
        #expect(telemetry.filter(\.created).count == 1)
        #expect(telemetry.filter(\.reused).count == 199)
        #expect(Set(telemetry.map(\.id)) == ["cache-1"])
    }

    @Test func callsUseTheCacheInsteadOfSharedParts() async throws {
        let provider = CachingProvider(base: RecordingProvider(clock: ManualClock()))
        let engine = PipelineEngine(provider: provider)
        _ = await engine.execute(command(prompts: ["a", "b"], shared: shared, cache: CachePlan()))
        let requests = provider.recorder.snapshot.requests
        #expect(requests.count == 2)
        #expect(requests.allSatisfy { $0.cache?.id == "cache-1" && $0.parts.count == 1 })
    }

    @Test func withoutTheCapabilityNoCacheIsAttemptedAndSharedPartsAreSent() async throws {
        let provider = RecordingProvider(clock: ManualClock())
        let result = await PipelineEngine(provider: provider).execute(command(shared: shared, cache: CachePlan()))
        let telemetry = try #require(result.success?.telemetry.cache)
        #expect(telemetry.id == nil)
        #expect(!telemetry.created && !telemetry.reused)
        #expect(provider.recorder.snapshot.requests.first?.parts.count == 2)
        #expect(provider.recorder.snapshot.requests.first?.cache == nil)
    }

    @Test func anExpiredCacheIsRecreated() async throws {
        let clock = ManualClock()
        let provider = CachingProvider(base: RecordingProvider(clock: clock))
        let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(clock: clock))
        let plan = CachePlan(ttlSeconds: 60)
        let first = await engine.execute(command("1", shared: shared, cache: plan))
        clock.advance(by: .seconds(59))
        let second = await engine.execute(command("2", shared: shared, cache: plan))
        clock.advance(by: .seconds(1))
        let third = await engine.execute(command("3", shared: shared, cache: plan))
        #expect(first.success?.telemetry.cache?.created == true)
        #expect(second.success?.telemetry.cache?.reused == true)
        #expect(third.success?.telemetry.cache?.created == true)
        #expect(third.success?.telemetry.cache?.id == "cache-2")
        #expect(provider.recorder.snapshot.cachesCreated == 2)
    }

    @Test func theKeyDependsOnModelSystemAndSharedParts() {
        let a = CacheKey.derive(model: "m", systemInstruction: "s", parts: shared)
        #expect(a == CacheKey.derive(model: "m", systemInstruction: "s", parts: shared))
        #expect(a != CacheKey.derive(model: "n", systemInstruction: "s", parts: shared))
        #expect(a != CacheKey.derive(model: "m", systemInstruction: "t", parts: shared))
        #expect(a != CacheKey.derive(model: "m", systemInstruction: "s", parts: [.text("other")]))
        #expect(a.count == 32)
    }

    @Test func aFailedCreationIsCacheFailedAndTheFallbackRescuesIt() async throws {
        let provider = CachingProvider(base: RecordingProvider(clock: ManualClock()), failCreation: true)
        let engine = PipelineEngine(provider: provider)
        let plain = await engine.execute(command(shared: shared, cache: CachePlan()))
        #expect(plain.failure?.kind == .cacheFailed)
        #expect(plain.failure?.message.contains("context too small") == true)

        let rescued = await engine.executeWithFallback(command(shared: shared, fallback: APICall(model: "lite", parts: [.text("q")]), cache: CachePlan()))
        let finalized = try #require(rescued.success)
        #expect(finalized.telemetry.usedFallback)
        #expect(finalized.telemetry.primaryError?.kind == .cacheFailed)
        #expect(finalized.responses.map(\.model) == ["lite"])
    }

    @Test func theMockCountsCachedTokens() async throws {
        let engine = PipelineEngine(provider: MockProvider.make())
        let result = await engine.execute(command(prompts: ["abcd"], shared: [.text("12345678")], cache: CachePlan()))
        let finalized = try #require(result.success)
        #expect(finalized.usage.cachedTokens == 2)
        #expect(finalized.usage.promptTokens == 3)
        #expect(finalized.telemetry.cache?.id?.hasPrefix("mock-cache-") == true)
    }
}
