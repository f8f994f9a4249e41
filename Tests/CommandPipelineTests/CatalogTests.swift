import CommandPipeline
import CommandPipelineTesting
import Foundation
import Synchronization
import Testing

/// A small catalog for the tests: "m" takes text only, "vision" text and images; both priced.
private let testCatalog = ModelCatalog([
    ModelInfo(
        name: "m", provider: "mock", contextWindow: 100, maxOutputTokens: 50, inputModalities: [.text], minCacheTokens: 1000,
        prices: ModelPrices(input: 100_000, cachedInput: 50_000, output: 200_000, batchDiscount: 0.5)),
    ModelInfo(name: "vision", provider: "mock", contextWindow: 10_000, maxOutputTokens: 1000, inputModalities: [.text, .image], supportsSystemInstruction: false),
])

private func plan(_ calls: [APICall], shared: [APIPart] = [], fallback: APICall? = nil, cache: CachePlan? = nil) -> PlannedCommand {
    PlannedCommand(id: "p", plan: ExecutionPlan(calls: calls, sharedParts: shared, fallbackCall: fallback, cache: cache))
}

private let png = APIPart.inline(InlineData(mimeType: "image/png", data: Data([0x89, 0x50])))

@Suite struct ModelCatalogTests {
    @Test(arguments: [
        ("gpt-4o", "gpt-4o"), ("gpt-4o-2024-08-06", "gpt-4o"), ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"), ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
    ])
    func findsModelsByNameAndDatedName(_ asked: String, _ found: String) {
        #expect(ModelCatalog.builtin.info(for: asked)?.name == found)
    }

    @Test func unknownModelsAreNotFound() {
        #expect(ModelCatalog.builtin.info(for: "my-finetune") == nil)
        #expect(ModelCatalog.builtin.info(for: "gpt-4o-mini-xl") == nil)
    }

    @Test func everyBuiltinEntryIsDatedSourcedAndConsistent() {
        #expect(ModelCatalog.builtin.asOf == ModelCatalog.builtinDate)
        let providers = Set(ModelCatalog.builtin.models.values.map(\.provider))
        #expect(providers == ["openai", "gemini", "anthropic"])
        for model in ModelCatalog.builtin.models.values {
            #expect(model.source.contains("https://") && model.source.contains(ModelCatalog.builtinDate), "\(model.name)")
            #expect(model.maxOutputTokens <= model.contextWindow, "\(model.name)")
            #expect(model.inputModalities.contains(.text), "\(model.name)")
            #expect(model.prices != nil, "every built-in model is priced: \(model.name)")
            #expect((model.prices?.cachedInput ?? 0) <= (model.prices?.input ?? 0), "\(model.name)")
            #expect(model.prices?.batchDiscount == 0.5, "\(model.name)")
        }
    }
}

@Suite struct CatalogFileTests {
    @Test func addsModelsAndOverridesOnlyTheFieldsGiven() throws {
        let json = #"""
            {"models": {
              "local-llama": {"provider": "openai", "context_window": 8192, "max_output_tokens": 2048,
                              "input_modalities": ["text"], "system_instruction": false, "source": "our box"},
              "gpt-4o": {"prices": {"input": 2, "output": 8}}
            }}
            """#
        let catalog = try CatalogFile.parse(Array(json.utf8), over: .builtin).get()
        let local = try #require(catalog.info(for: "local-llama"))
        #expect(local.contextWindow == 8192 && local.maxOutputTokens == 2048 && !local.supportsSystemInstruction && local.prices == nil)
        let gpt = try #require(catalog.info(for: "gpt-4o"))
        #expect(gpt.prices?.input == 2 && gpt.prices?.output == 8)
        #expect(gpt.prices?.cachedInput == ModelCatalog.builtin.info(for: "gpt-4o")?.prices?.cachedInput, "fields not given are kept")
        #expect(gpt.contextWindow == 128_000)
        #expect(gpt.source.hasPrefix("user catalog over: "))
    }

    /// Issue 30: storage and one-hour write prices in a --models file, and in the built-in catalog.
    @Test func storageAndOneHourWritePrices() throws {
        let json = #"{"models": {"gemini-2.5-flash": {"prices": {"cache_storage_per_hour": 2.5}}, "claude-sonnet-4-5": {"prices": {"cache_write_1h": 7, "cache_storage_per_hour": null}}}}"#
        let catalog = try CatalogFile.parse(Array(json.utf8), over: .builtin).get()
        #expect(catalog.info(for: "gemini-2.5-flash")?.prices?.cacheStoragePerHour == 2.5)
        #expect(catalog.info(for: "gemini-2.5-flash")?.prices?.input == 0.30, "fields not given are kept")
        #expect(catalog.info(for: "claude-sonnet-4-5")?.prices?.cacheWriteLong == 7)
        #expect(catalog.info(for: "claude-sonnet-4-5")?.prices?.cacheStoragePerHour == nil)
        let bad = CatalogFile.parse(Array(#"{"models": {"gpt-4o": {"prices": {"cache_storage_per_hour": -1}}}}"#.utf8), over: .builtin)
        #expect(bad.failure?.description.contains("models.gpt-4o.prices.cache_storage_per_hour: expected a number from 0 to 1000000, got -1") == true)
        // Built in: Gemini bills storage, Anthropic one-hour writes at twice the input price; the
        // others neither, and every such figure says where it comes from.
        for model in ModelCatalog.builtin.models.values {
            let prices = try #require(model.prices)
            switch model.provider {
            case "gemini":
                #expect((prices.cacheStoragePerHour ?? 0) > 0 && model.source.contains("cache storage"), "\(model.name)")
            case "anthropic":
                #expect(prices.cacheWriteLong == prices.input * 2 && prices.cacheStoragePerHour == nil, "\(model.name)")
                #expect(model.source.contains("one-hour cache writes"), "\(model.name)")
            default:
                #expect(prices.cacheWriteLong == nil && prices.cacheStoragePerHour == nil, "\(model.name)")
            }
        }
        #expect(ModelCatalog.builtin.info(for: "gemini-2.5-pro")?.prices?.cacheStoragePerHour == 4.5)
    }

    @Test(arguments: [
        (#"[]"#, "expected an object, got a list"),
        (#"{"model": {}}"#, #"model: unknown key "model"; known: models"#),
        (#"{"models": {"x": {"context_window": 10}}}"#, #"models.x: a model not in the built-in catalog needs "max_output_tokens""#),
        (#"{"models": {"x": {"context_window": "big", "max_output_tokens": 1}}}"#, #"models.x.context_window: expected a whole number from 1 to 100000000, got "big""#),
        (#"{"models": {"x": {"context_window": 0, "max_output_tokens": 1}}}"#, "models.x.context_window: expected a whole number from 1 to 100000000, got 0"),
        (#"{"models": {"x": {"context_window": 10, "max_output_tokens": 20}}}"#, "models.x.max_output_tokens: 20 is larger than the context window (10)"),
        (#"{"models": {"gpt-4o": {"prices": {"input": -1}}}}"#, "models.gpt-4o.prices.input: expected a number from 0 to 1000000, got -1"),
        (#"{"models": {"gpt-4o": {"prices": {"batch_discount": 1}}}}"#, "models.gpt-4o.prices.batch_discount: expected a number from 0 to 0.99, got 1"),
        (#"{"models": {"gpt-4o": {"input_modalities": ["text", "smell"]}}}"#, #"models.gpt-4o.input_modalities[1]: unknown modality "smell""#),
        (#"{"models": {"gpt-4o": {"streamin": true}}}"#, #"models.gpt-4o.streamin: unknown key "streamin""#),
        (#"{"models": {"x": {"context_window": 10, "max_output_tokens": 1, "prices": {"input": 1}}}}"#, #"models.x.prices: prices need "output""#),
        (#"{"models": {"gpt-4o": {}, "gpt-4o": {}}}"#, "not valid JSON"),
        (#"{"models": "#, "not valid JSON"),
    ])
    func problemsSayWhereAndWhat(_ json: String, _ message: String) {
        switch CatalogFile.parse(Array(json.utf8), over: .builtin) {
        case .success: Issue.record("accepted: \(json)")
        case .failure(let problem): #expect(problem.description.contains(message), "\(problem)")
        }
    }

    @Test func aMissingFileIsAProblem() {
        guard case .failure(let problem) = CatalogFile.load("/no/such/models.json", over: .builtin) else {
            Issue.record("loaded a missing file")
            return
        }
        #expect(problem.description.contains("cannot open /no/such/models.json"))
    }
}

@Suite struct PreflightTests {
    @Test func aPartOfAModalityTheModelRefusesNamesThePartAndTheModel() throws {
        let shared = try #require(Preflight.check(plan([APICall(model: "m", parts: [.text("what is it?")])], shared: [png]), catalog: testCatalog))
        #expect(shared.kind == .capabilityMissing)
        #expect(shared.path == "plan.shared_parts[0]")
        #expect(shared.message.contains("model 'm' does not accept image input (inline image/png)"))
        let own = try #require(Preflight.check(plan([APICall(model: "vision", parts: [.text("a")]), APICall(model: "m", parts: [.text("b"), png])]), catalog: testCatalog))
        #expect(own.path == "plan.calls[1].parts[1]")
        let fallback = Preflight.check(plan([APICall(model: "vision", parts: [png])], fallback: APICall(model: "m", parts: [png])), catalog: testCatalog)
        #expect(fallback?.path == "plan.fallback_call.parts[0]")
        #expect(Preflight.check(plan([APICall(model: "vision", parts: [.text("a"), png])]), catalog: testCatalog) == nil)
    }

    @Test func realModelsDeclareTheirModalities() {
        let audio = APIPart.fileRef(FileReference(uri: "x", mimeType: "audio/wav"))
        let pdf = APIPart.filePlaceholder(FilePlaceholder(path: "paper.pdf"))
        #expect(Preflight.check(plan([APICall(model: "gpt-4o", parts: [audio])]), catalog: .builtin)?.kind == .capabilityMissing)
        #expect(Preflight.check(plan([APICall(model: "claude-sonnet-4-5", parts: [audio])]), catalog: .builtin)?.kind == .capabilityMissing)
        #expect(Preflight.check(plan([APICall(model: "gemini-2.5-flash", parts: [audio, pdf, png])]), catalog: .builtin) == nil)
        #expect(Preflight.check(plan([APICall(model: "gpt-4o-2024-08-06", parts: [pdf, png])]), catalog: .builtin) == nil)
    }

    @Test func unknownModelsAreNotChecked() {
        #expect(Preflight.check(plan([APICall(model: "mystery", parts: [png, .text(String(repeating: "x", count: 10_000))])]), catalog: testCatalog) == nil)
    }

    @Test func anInputOverTheContextWindowIsAPreciseInvalidCommand() throws {
        let long = String(repeating: "abcd", count: 101)   // 101 tokens by the heuristic, window 100
        let error = try #require(Preflight.check(plan([APICall(model: "m", parts: [.text(long)])]), catalog: testCatalog))
        #expect(error.kind == .invalidCommand)
        #expect(error.path == "plan.calls[0]")
        #expect(error.message.contains("is 101 tokens (estimated at 4 bytes of text a token), more than the 100-token context window of 'm'"))
        #expect(Preflight.check(plan([APICall(model: "m", parts: [.text(String(repeating: "abcd", count: 100))])]), catalog: testCatalog) == nil)
        // The planner's own lower bound counts when given.
        var planned = plan([APICall(model: "m", parts: [.text("short")])])
        planned.perCallEstimates = [TokenEstimate(minTokens: 500, expectedTokens: 600, maxTokens: 700)]
        #expect(Preflight.check(planned, catalog: testCatalog)?.message.contains("500 tokens (per_call_estimates[0].min_tokens)") == true)
    }

    @Test func maxTokensAndSystemInstructionsAreChecked() {
        let tooLong = Preflight.check(plan([APICall(model: "m", parts: [.text("a")], config: GenerationConfig(maxTokens: 51))]), catalog: testCatalog)
        #expect(tooLong?.path == "plan.calls[0].config.max_tokens")
        #expect(tooLong?.message == "config.max_tokens asks for 51 output tokens; model 'm' writes at most 50")
        let system = Preflight.check(plan([APICall(model: "vision", parts: [.text("a")], config: GenerationConfig(systemInstruction: "be brief"))]), catalog: testCatalog)
        #expect(system?.kind == .capabilityMissing && system?.path == "plan.calls[0].config.system_instruction")
    }

    /// Near the window, a provider that can count decides, both ways.
    @Test func countedTokensDecideNearTheWindow() async {
        struct Counter: TokenCountingCapability {
            let count: Int
            let asked = Shared(0)
            func countTokens(_ request: GenerationRequest) async throws -> Int {
                asked.withLock { $0 += 1 }
                return count
            }
        }
        let over = plan([APICall(model: "m", parts: [.text(String(repeating: "abcd", count: 120))])])   // estimated 120 > 100
        let under = Counter(count: 90)
        #expect(await Preflight.check(over, catalog: testCatalog, counting: under) == nil, "the count (90) wins over the estimate (120)")
        #expect(under.asked.withLock { $0 } == 1)
        let near = plan([APICall(model: "m", parts: [.text(String(repeating: "abcd", count: 60))])])   // estimated 60 ≤ 100
        let error = await Preflight.check(near, catalog: testCatalog, counting: Counter(count: 130))
        #expect(error?.message.contains("is 130 tokens (counted by the provider)") == true)
        let far = Counter(count: 1_000_000)
        #expect(await Preflight.check(plan([APICall(model: "m", parts: [.text("tiny")])]), catalog: testCatalog, counting: far) == nil)
        #expect(far.asked.withLock { $0 } == 0, "a call far below the window is not counted")
    }

    @Test func aCacheBelowTheMinimumIsDroppedWithAReason() {
        let small = plan([APICall(model: "m", parts: [.text("q")])], shared: [.text("a short context")], cache: CachePlan())
        #expect(Preflight.uncachedReason(small, catalog: testCatalog)?.contains("below m's minimum cache size of 1,000 tokens") == true)
        let withFile = plan([APICall(model: "m", parts: [.text("q")])], shared: [.text("a"), .fileRef(FileReference(uri: "u", mimeType: "text/plain"))], cache: CachePlan())
        #expect(Preflight.uncachedReason(withFile, catalog: testCatalog) == nil, "a file's size is not known before upload")
        let big = plan([APICall(model: "m", parts: [.text("q")])], shared: [.text(String(repeating: "abcd", count: 1000))], cache: CachePlan())
        #expect(Preflight.uncachedReason(big, catalog: testCatalog) == nil)
        let noCache = plan([APICall(model: "m", parts: [.text("q")])], shared: [.text("a")])
        #expect(Preflight.uncachedReason(noCache, catalog: testCatalog) == nil)
    }
}

@Suite struct PreflightEngineTests {
    @Test func theEngineChecksBeforeAnyCallAndSaysOnceWhichModelsItDoesNotKnow() async throws {
        let unknown = Shared<[String]>([])
        var configuration = EngineConfiguration()
        configuration.catalog = testCatalog
        configuration.onUnknownModel = { name in unknown.withLock { $0.append(name) } }
        let engine = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
        let refused = await engine.run(plan([APICall(model: "m", parts: [png])]))
        #expect(refused.error?.kind == .capabilityMissing)
        #expect(refused.telemetry.calls.isEmpty, "no call was made")
        for _ in 0..<2 { #expect(await engine.run(plan([APICall(model: "other", parts: [.text("x")])])).succeeded) }
        #expect(unknown.withLock { $0 } == ["other"])
    }

    @Test func aCacheBelowTheMinimumRunsUncachedWithTheReasonInTelemetry() async throws {
        let command = plan([APICall(model: "m", parts: [.text("q")])], shared: [.text("a short context")], cache: CachePlan())
        var configuration = EngineConfiguration()
        configuration.catalog = testCatalog
        let checked = try await PipelineEngine(provider: MockProvider.make(), configuration: configuration).run(command)
        #expect(checked.succeeded)
        let cache = try #require(checked.telemetry.cache)
        #expect(cache.id == nil && !cache.created)
        #expect(cache.uncachedReason?.contains("minimum cache size of 1,000 tokens") == true)
        // Without the catalog the mock makes the cache.
        let unchecked = await PipelineEngine(provider: MockProvider.make()).run(command)
        #expect(unchecked.telemetry.cache?.created == true)
    }
}

@Suite struct CostTests {
    @Test func eachKindOfTokenAtItsOwnPrice() {
        let prices = ModelPrices(input: 2, cachedInput: 0.5, output: 8, cacheWrite: 2.5, batchDiscount: 0.5)
        let usage = Usage(promptTokens: 1000, completionTokens: 50, cachedTokens: 400, cacheCreationTokens: 100)
        let cost = Cost.of(usage, prices: prices)
        #expect(abs(cost.inputUSD - 0.001) < 1e-12)
        #expect(abs(cost.cachedInputUSD - 0.0002) < 1e-12)
        #expect(abs(cost.cacheWriteUSD - 0.00025) < 1e-12)
        #expect(abs(cost.outputUSD - 0.0004) < 1e-12)
        #expect(abs(cost.totalUSD - 0.00185) < 1e-12)
        #expect(abs(Cost.of(usage, prices: prices, batch: true).totalUSD - 0.000925) < 1e-12)
        // Without a cache-write price, written tokens cost the input price.
        let plain = ModelPrices(input: 2, cachedInput: 0.5, output: 8)
        #expect(abs(Cost.of(usage, prices: plain).cacheWriteUSD - 0.0002) < 1e-12)
        // Absurd counts from a server cannot make a negative cost.
        #expect(Cost.of(Usage(promptTokens: 10, cachedTokens: 50, cacheCreationTokens: 50), prices: prices).totalUSD >= 0)
    }

    @Test func theEnginePricesResponsesFallbackAndPartialResults() async throws {
        var configuration = EngineConfiguration(retryPolicy: .none)
        configuration.catalog = testCatalog
        let engine = try PipelineEngine(provider: MockProvider.make(MockConfiguration(failingModels: ["broken"])), configuration: configuration)
        // "hello" is 2 prompt tokens, "echo: hello" 3 completion tokens: 2 × $0.1 + 3 × $0.2.
        let ok = await engine.run(plan([APICall(model: "m", parts: [.text("hello")])]))
        let finalized = try #require(ok.result.success)
        #expect(abs((finalized.telemetry.cost?.totalUSD ?? 0) - 0.8) < 1e-9)
        #expect(finalized.responses.first?.cost?.totalUSD == finalized.telemetry.cost?.totalUSD)
        #expect(finalized.telemetry.cost?.parts == [CostPart(request: .call, model: "m", callIndex: 0, usd: finalized.responses[0].cost!.totalUSD)])
        #expect(ok.telemetry.cost == finalized.telemetry.cost)
        var record: [UInt8] = []
        ResultWriter.record(ok, index: 0, to: &record)
        let line = String(decoding: record, as: UTF8.self)
        #expect(line.contains(#""cost":{"usd":0.8,"input_usd":0.2,"cached_input_usd":0.0,"cache_write_usd":0.0,"cache_storage_usd":0.0,"output_usd":0.6,"unpriced_calls":0}}"#))
        #expect(line.contains(#""unpriced_calls":0,"requests":[{"request":"call","model":"m","call_index":0,"usd":0.8}]}"#))

        let rescued = await engine.run(plan([APICall(model: "broken", parts: [.text("hello")])], fallback: APICall(model: "m", parts: [.text("hello")])))
        #expect(rescued.telemetry.usedFallback)
        #expect(abs((rescued.telemetry.cost?.totalUSD ?? 0) - 0.8) < 1e-9, "the fallback's call is priced")

        let partial = await engine.run(plan([APICall(model: "m", parts: [.text("hello")]), APICall(model: "broken", parts: [.text("x")])]))
        #expect(!partial.succeeded)
        #expect(abs((partial.telemetry.cost?.totalUSD ?? 0) - 0.8) < 1e-9, "what was paid for before the failure is priced")

        let unpriced = await engine.run(plan([APICall(model: "vision", parts: [.text("x")])]))
        #expect(unpriced.succeeded && unpriced.telemetry.cost == nil)
    }

    @Test func theBudgetStopsTakingCommandsOnceItWouldBePassed() async throws {
        let ledger = CostLedger(limit: 2.0)
        var configuration = EngineConfiguration()
        configuration.catalog = testCatalog
        configuration.costLedger = ledger
        let engine = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
        // Each command is estimated at 2 prompt tokens + max_tokens 3 → $0.8, and costs $0.8.
        let each = APICall(model: "m", parts: [.text("hello")], config: GenerationConfig(maxTokens: 3))
        #expect(abs(Cost.estimate(plan([each]), catalog: testCatalog) - 0.8) < 1e-9)
        var kinds: [APIError.Kind?] = []
        for _ in 0..<4 { kinds.append(await engine.run(plan([each])).error?.kind) }
        #expect(kinds == [nil, nil, .budgetExceeded, .budgetExceeded], "$1.6 spent; a third would make $2.4")
        #expect(abs(ledger.spent - 1.6) < 1e-9)
        #expect(ledger.refused == 2 && ledger.exhausted && ledger.reserved < 1e-9)
        // A cheap command after the stop is refused too: the run takes no more commands.
        let cheap = await engine.run(plan([APICall(model: "vision", parts: [.text("x")])]))
        #expect(cheap.error?.kind == .budgetExceeded)
        #expect(cheap.telemetry.calls.isEmpty)
        #expect(cheap.error?.message.contains("budget of $2.00") == true)
    }

    /// In-flight estimates count: with two commands running, a third that would pass the
    /// budget with theirs is refused before either finishes.
    @Test func inFlightEstimatesCount() async {
        let ledger = CostLedger(limit: 2.0)
        #expect(ledger.reserve(0.8) && ledger.reserve(0.8))
        #expect(!ledger.reserve(0.8))
        ledger.settle(reserved: 0.8, cost: Cost(outputUSD: 0.1))
        #expect(!ledger.reserve(0.1), "once stopped, it stays stopped")
        #expect(abs(ledger.spent - 0.1) < 1e-12 && abs(ledger.reserved - 0.8) < 1e-12)
        #expect(CostLedger().reserve(1e12), "without a limit it only counts")
    }
}

/// Issue 30: every request sent on a command's behalf is priced on that command.
@Suite struct EveryDollarTests {
    /// "c": a dollar an input token, 10¢ a cached one, $2 an output token, $1.5 a written one,
    /// $3 a one-hour write, $3.6 a token an hour of storage (so every part is told apart).
    static let catalog = ModelCatalog([
        ModelInfo(
            name: "c", provider: "mock", contextWindow: 100_000, maxOutputTokens: 1000,
            prices: ModelPrices(input: 1e6, cachedInput: 1e5, output: 2e6, cacheWrite: 1.5e6, cacheWriteLong: 3e6, cacheStoragePerHour: 3.6e6, batchDiscount: 0.5))
    ])

    static func cached(_ prompt: String, ttl: Int = 1800) -> PlannedCommand {
        plan([APICall(model: "c", parts: [.text(prompt)])], shared: [.text("12345678")], cache: CachePlan(ttlSeconds: ttl))
    }

    @Test func oneHourWritesAtTheirOwnPriceAndStorageByTheHour() {
        let prices = Self.catalog.models["c"]!.prices!
        let usage = Usage(promptTokens: 10, cacheCreationTokens: 6, cacheCreationLongTokens: 4)
        // 4 plain at $1, 2 five-minute writes at $1.5, 4 one-hour writes at $3.
        #expect(Cost.of(usage, prices: prices).inputUSD == 4)
        #expect(Cost.of(usage, prices: prices).cacheWriteUSD == 15)
        #expect(Cost.of(usage, prices: prices, batch: true).cacheWriteUSD == 7.5)
        // Without a one-hour price, one-hour writes cost the write price.
        var plain = prices
        plain.cacheWriteLong = nil
        #expect(Cost.of(usage, prices: plain).cacheWriteUSD == 9)
        // 1,000 tokens for 30 minutes at $3.6 a token an hour; nothing without a storage price.
        #expect(abs(Cost.storage(tokens: 1000, seconds: 1800, prices: prices).cacheStorageUSD - 1800) < 1e-6)
        plain.cacheStoragePerHour = nil
        #expect(Cost.storage(tokens: 1000, seconds: 1800, prices: plain).totalUSD == 0)
    }

    @Test func theCommandThatCreatedTheCachePaysForItsCreationAndStorage() async throws {
        let ledger = CostLedger()
        var configuration = EngineConfiguration(retryPolicy: .none)
        configuration.catalog = Self.catalog
        configuration.costLedger = ledger
        let engine = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
        let first = await engine.run(Self.cached("abcd"))
        let second = await engine.run(Self.cached("efgh"))
        let firstCost = try #require(first.telemetry.cost)
        let secondCost = try #require(second.telemetry.cost)
        #expect(first.telemetry.cache?.created == true && second.telemetry.cache?.reused == true)
        // The mock writes the 2 shared tokens ($1.5 each), kept 30 minutes ($1.8 each).
        let creation = firstCost.parts.first { $0.request == .cacheCreation }
        let storage = firstCost.parts.first { $0.request == .cacheStorage }
        #expect(creation?.usd == 3 && creation?.model == "c")
        #expect(abs((storage?.usd ?? 0) - 3.6) < 1e-9)
        #expect(firstCost.cacheWriteUSD == 3 && abs(firstCost.cacheStorageUSD - 3.6) < 1e-9)
        let call = try #require(first.result.success?.responses.first?.cost)
        #expect(abs(firstCost.totalUSD - (call.totalUSD + 6.6)) < 1e-9)
        #expect(firstCost.parts.map(\.request) == [.call, .cacheCreation, .cacheStorage])
        #expect(abs(firstCost.parts.reduce(0) { $0 + $1.usd } - firstCost.totalUSD) < 1e-9)
        // The command that reused it pays for its own call only.
        #expect(secondCost.parts.map(\.request) == [.call])
        #expect(secondCost.cacheWriteUSD == 0 && secondCost.cacheStorageUSD == 0)
        // The run's account is the sum of the results.
        #expect(abs(ledger.spent - (firstCost.totalUSD + secondCost.totalUSD)) < 1e-9)
        var record: [UInt8] = []
        ResultWriter.record(first, index: 0, to: &record)
        let line = String(decoding: record, as: UTF8.self)
        #expect(line.contains(#"{"request":"cache_creation","model":"c","usd":3.0}"#))
        #expect(line.contains(#""cache_storage_usd":3.6,"#))
    }

    @Test func aFailedCommandStillPaysForTheCacheItCreated() async throws {
        var configuration = EngineConfiguration(retryPolicy: .none)
        configuration.catalog = Self.catalog
        let engine = try PipelineEngine(provider: MockProvider.make(MockConfiguration(failingModels: ["broken"])), configuration: configuration)
        let command = plan(
            [APICall(model: "c", parts: [.text("a")]), APICall(model: "broken", parts: [.text("b")])], shared: [.text("12345678")], cache: CachePlan(ttlSeconds: 1800))
        let outcome = await engine.run(command)
        #expect(!outcome.succeeded && outcome.telemetry.cache?.created == true)
        let cost = try #require(outcome.telemetry.cost)
        #expect(cost.parts.contains { $0.request == .cacheCreation && $0.usd == 3 })
        #expect(cost.parts.contains { $0.request == .cacheStorage })
    }

    @Test func anAttemptBilledBeforeItFailedIsPricedOnItsCall() async throws {
        let billed = Usage(promptTokens: 4, completionTokens: 2)
        let provider = ScriptedProvider(script: [
            "c": [.fail(APIError(.providerError, "the stream broke", retryable: true).billed(billed)), .answer("ok")],
        ])
        var configuration = EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 2, baseDelay: .zero, jitter: 0))
        configuration.catalog = Self.catalog
        let engine = try PipelineEngine(provider: provider, configuration: configuration)
        let outcome = await engine.run(plan([APICall(model: "c", parts: [.text("hello")])]))
        #expect(outcome.succeeded)
        let cost = try #require(outcome.telemetry.cost)
        let attempt = try #require(cost.parts.first { $0.request == .failedAttempt })
        // 4 input tokens at $1 and 2 output tokens at $2.
        #expect(attempt.usd == 8 && attempt.callIndex == 0 && attempt.attempt == 1 && attempt.model == "c")
        let call = try #require(outcome.result.success?.responses.first?.cost)
        #expect(abs(cost.totalUSD - (call.totalUSD + 8)) < 1e-9)
        #expect(outcome.telemetry.billedAttempts == [BilledAttempt(callIndex: 0, attempt: 1, model: "c", usage: billed)])
        // An error that reported nothing adds nothing.
        let unbilled = ScriptedProvider(script: ["c": [.fail(APIError(.providerError, "refused", retryable: true)), .answer("ok")]])
        let plainOutcome = await (try PipelineEngine(provider: unbilled, configuration: configuration)).run(plan([APICall(model: "c", parts: [.text("hello")])]))
        #expect(plainOutcome.telemetry.cost?.parts.map(\.request) == [.call])
    }

    @Test func theBudgetReservesTheCacheOnceBeforeTheCommandThatCreatesIt() async throws {
        let command = Self.cached("abcd")
        let calls = Cost.estimate(command, catalog: Self.catalog)
        let cache = Cost.cacheEstimate(command, catalog: Self.catalog)
        // 2 shared tokens; 1800 s is above five minutes: written at the one-hour price ($3 each),
        // one warm-up output token ($2), and kept 30 minutes ($1.8 each). For 300 s: the
        // five-minute price ($1.5 each) and 5 minutes of storage ($0.3 each).
        #expect(abs(cache - (2 * 3 + 2 + 3.6)) < 1e-9)
        #expect(abs(Cost.cacheEstimate(Self.cached("abcd", ttl: 300), catalog: Self.catalog) - (2 * 1.5 + 2 + 0.6)) < 1e-9)
        #expect(Cost.cacheEstimate(plan([APICall(model: "c", parts: [.text("abcd")])]), catalog: Self.catalog) == 0)
        // A budget the calls fit in but not the cache: the command is not started.
        var configuration = EngineConfiguration(retryPolicy: .none)
        configuration.catalog = Self.catalog
        configuration.costLedger = CostLedger(limit: calls + cache / 2)
        let refused = await (try PipelineEngine(provider: MockProvider.make(), configuration: configuration)).run(command)
        #expect(refused.error?.kind == .budgetExceeded)
        // With room for both, it runs, and what was spent (creation and storage included) is counted.
        let ledger = CostLedger(limit: calls + cache + 1)
        configuration.costLedger = ledger
        let engine = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
        let ran = await engine.run(command)
        #expect(ran.succeeded)
        #expect(abs(ledger.spent - (ran.telemetry.cost?.totalUSD ?? 0)) < 1e-9 && ledger.spent > 6.6)
        #expect(ledger.reserved < 1e-9)
        // The key is claimed once: the next command asking for it reserves no cache.
        #expect(!ledger.claimCache(ExecutionState(command: command).cacheRequest!.key))
    }

    /// Keys come from input: the ledger remembers a bounded number, and past it reserves for
    /// every new key (the safe side) instead of growing.
    @Test func theLedgerRemembersABoundedNumberOfCacheKeys() {
        let ledger = CostLedger(limit: 1)
        for i in 0..<(CostLedger.maxCacheKeys - 1) { _ = ledger.claimCache("k\(i)") }
        #expect(ledger.claimCache("last"))
        #expect(!ledger.claimCache("last") && !ledger.claimCache("k0"))
        #expect(ledger.claimCache("beyond") && ledger.claimCache("beyond"), "not remembered: reserved each time")
    }

    /// The first command asking for a key may end without creating the cache (it failed before
    /// the cache stage, or was refused): the claim passes on, so the command that does create it
    /// reserves its creation and storage.
    @Test func aClaimIsHandedOnWhenTheClaimerDidNotCreateTheCache() async throws {
        let ledger = CostLedger(limit: 1_000)
        #expect(ledger.claimCache("k"))
        #expect(!ledger.claimCache("k"))
        ledger.releaseCache("k")
        #expect(ledger.claimCache("k"), "claimed again after the release")
        // Through the engine: a command that fails validation claimed the key and hands it on.
        var configuration = EngineConfiguration(retryPolicy: .none)
        configuration.catalog = Self.catalog
        let engineLedger = CostLedger(limit: 1_000_000)
        configuration.costLedger = engineLedger
        let engine = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
        var broken = Self.cached("abcd")
        broken.id = ""
        let failed = await engine.run(broken)
        #expect(failed.error?.kind == .invalidCommand)
        let key = ExecutionState(command: Self.cached("abcd")).cacheRequest!.key
        #expect(engineLedger.claimCache(key), "the failed claimer released the key")
        engineLedger.releaseCache(key)
        let created = await engine.run(Self.cached("abcd"))
        #expect(created.telemetry.cache?.created == true)
        #expect(!engineLedger.claimCache(key), "the creator keeps its claim")
    }
}

/// A cache warm-up (or a billed failed attempt) whose server reported no usage is counted as
/// unreported — the command's cost a lower bound — never priced as $0 as if it were exact.
@Suite struct UnreportedOtherCostTests {
    @Test func aWarmUpWithoutUsageIsUnreportedNotFree() {
        let catalog = ModelCatalog([ModelInfo(
            name: "m", provider: "anthropic", contextWindow: 100_000, maxOutputTokens: 1_000,
            prices: ModelPrices(input: 3, cachedInput: 0.3, output: 15, cacheWrite: 3.75))])
        func telemetry(_ usage: Usage) -> Telemetry {
            var cache = CacheTelemetry(id: "c1", key: "k", created: true, reused: false, kind: "prefix", creationUsage: usage)
            cache.model = "m"
            return Telemetry(provider: "anthropic", cache: cache)
        }
        let unreported = CostUnit.others(telemetry(.unreported), catalog: catalog)
        #expect(unreported?.unreportedCalls == 1 && unreported?.totalUSD == 0, "\(String(describing: unreported))")
        let reported = CostUnit.others(telemetry(Usage(promptTokens: 1_000_000, completionTokens: 0)), catalog: catalog)
        #expect(reported?.unreportedCalls == 0 && (reported?.totalUSD ?? 0) > 0, "\(String(describing: reported))")
    }
}
