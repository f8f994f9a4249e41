import CommandPipeline
import CommandPipelineReport
import CommandPipelineTesting
import Foundation
import Testing

/// Issue 22, part 4: usage a server did not report is unknown (never zero), a call refused before
/// anything was sent made no attempt, and files a provider takes only inline are read, capped and
/// put inline by the upload stage.

/// Answers every call without reporting usage, as a streaming server that ignores
/// `stream_options.include_usage` does.
private struct SilentUsageProvider: GenerationCapability {
    var providerName: String { "silent" }
    func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        GenerationResponse(text: "ok", model: request.model, usage: .unreported)
    }
}

/// "p": $1 an input token, $2 an output token.
private let pricedCatalog = ModelCatalog([
    ModelInfo(name: "p", provider: "silent", contextWindow: 100_000, maxOutputTokens: 1000, prices: ModelPrices(input: 1e6, cachedInput: 1e5, output: 2e6))
])

@Suite struct UnreportedUsageTests {
    @Test func anUnreportedUsageIsWrittenAsNullsAndCounted() {
        #expect(WrittenRecords.usage(.unreported) == #"{"prompt_tokens":null,"completion_tokens":null,"total_tokens":null,"cached_tokens":null,"unreported_calls":1}"#)
        #expect(WrittenRecords.usage(Usage(promptTokens: 3, completionTokens: 2)) == #"{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"cached_tokens":0}"#)
        // A sum over calls keeps the known counts and how many calls did not say: the sum is unknown.
        let sum = Usage(promptTokens: 3, completionTokens: 2) + .unreported + .unreported
        #expect(sum.unreportedCalls == 2 && sum.promptTokens == 3 && !sum.isReported)
        #expect(WrittenRecords.usage(sum).hasSuffix(#""unreported_calls":2}"#))
        #expect(Usage.zero.isReported && !Usage.unreported.isReported)
        #expect(Usage(unreportedCalls: -5).unreportedCalls == 0, "a count from outside is range-checked")
    }

    @Test func aCallWithoutUsageHasNoCostAndTheCommandsCostCountsIt() throws {
        let known = CallResponse(callIndex: 0, text: "a", model: "p", finishReason: "stop", usage: Usage(promptTokens: 1, completionTokens: 1))
        let silent = CallResponse(callIndex: 1, text: "b", model: "p", finishReason: "stop", usage: .unreported)
        #expect(Cost.of(silent, catalog: pricedCatalog) == nil, "unknown, not $0")
        let total = try #require(Cost.of([known, silent], catalog: pricedCatalog))
        #expect(total.totalUSD == 3 && total.unreportedCalls == 1 && total.unpricedCalls == 0)
        // Alone, it is still a priced command whose cost is a lower bound ($0 and one unreported call).
        let alone = Cost.of([silent], catalog: pricedCatalog)
        #expect(alone?.totalUSD == 0 && alone?.unreportedCalls == 1)
        // On an unpriced model it is just unpriced.
        let unpriced = CallResponse(callIndex: 0, text: "c", model: "unknown-model", finishReason: "stop", usage: .unreported)
        #expect(Cost.of([unpriced], catalog: pricedCatalog) == nil)
        var out: [UInt8] = []
        ResultWriter.cost(total, to: &out)
        #expect(String(decoding: out, as: UTF8.self).contains(#""unpriced_calls":0,"unreported_calls":1"#))
    }

    @Test func theBudgetHoldsTheEstimateOfACommandWhoseCostIsUnknown() {
        let ledger = CostLedger(limit: 1.0)
        #expect(ledger.reserve(0.4))
        var unknown = Cost.zero
        unknown.unreportedCalls = 1
        ledger.settle(reserved: 0.4, cost: unknown)
        #expect(ledger.spent == 0 && ledger.unreportedCalls == 1 && ledger.heldForUnreported == 0.4)
        // 0.4 held + 0.5 fits; another 0.2 would pass the limit although nothing known was spent.
        #expect(ledger.reserve(0.5))
        #expect(!ledger.reserve(0.2))
        // A known cost releases its estimate entirely.
        let known = CostLedger(limit: 1.0)
        #expect(known.reserve(0.4))
        known.settle(reserved: 0.4, cost: Cost(outputUSD: 0.1))
        #expect(known.heldForUnreported == 0 && known.reserve(0.9))
    }

    @Test func anEngineRunWithoutUsageReportsItUnknownAndKeepsTheBudgetSafe() async throws {
        let command = PlannedCommand(id: "silent", plan: ExecutionPlan(calls: [APICall(model: "p", parts: [.text("hi")], config: GenerationConfig(maxTokens: 1))]))
        let estimate = Cost.estimate(command, catalog: pricedCatalog)
        #expect(estimate > 0)
        var configuration = EngineConfiguration(retryPolicy: .none)
        configuration.catalog = pricedCatalog
        configuration.costLedger = CostLedger(limit: estimate * 2.5)
        let engine = try PipelineEngine(provider: SilentUsageProvider(), configuration: configuration)
        let first = await engine.run(command)
        let finalized = try #require(first.result.success)
        #expect(finalized.usage.unreportedCalls == 1 && finalized.responses[0].usage == .unreported)
        #expect(finalized.responses[0].cost == nil)
        #expect(finalized.telemetry.cost?.unreportedCalls == 1 && finalized.telemetry.cost?.totalUSD == 0)
        var line: [UInt8] = []
        ResultWriter.record(first, index: 0, to: &line)
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.contains(#""finish_reason":"stop","usage":{"prompt_tokens":null"#))
        #expect(text.contains(#""unreported_calls":1}"#))
        // Two commands' estimates are held although nothing known was spent: the third is refused.
        #expect(await engine.run(command).succeeded)
        let third = await engine.run(command)
        #expect(third.error?.kind == .budgetExceeded)
        #expect(third.error?.message.contains("did not report") == true)
    }

    @Test func theHeldCountOfWhatCameBackIsTheAnswersBytesOverFourAtCatalogPrices() {
        // Input "abcdefgh" (2 tokens) + system "abcd" (1) + shared "xyz" (1); output 4,001 bytes (1,001 tokens).
        let call = APICall(model: "p", parts: [.text("abcdefgh")], config: GenerationConfig(systemInstruction: "abcd"))
        let command = PlannedCommand(id: "c", plan: ExecutionPlan(calls: [call], sharedParts: [.text("xyz")]))
        let long = CallResponse(callIndex: 0, text: String(repeating: "a", count: 4001), model: "p", finishReason: "stop", usage: .unreported)
        #expect(Cost.unreportedHeuristic([long], command: command, catalog: pricedCatalog) == 4 * 1 + 1001 * 2)
        // A tool call's name and arguments came back too: "f" (1) and {"a":1} (7 bytes: 2).
        var tool = long
        tool.text = ""
        tool.toolCalls = [ToolCall(id: "t", name: "f", arguments: ["a": 1])]
        #expect(Cost.unreportedHeuristic([tool], command: command, catalog: pricedCatalog) == 4 + (1 + 2) * 2)
        // Reported usage is priced as reported, an unpriced model is unpriced: nothing to hold for them.
        var reported = long
        reported.usage = Usage(promptTokens: 1, completionTokens: 1)
        var unpriced = long
        unpriced.model = "unknown-model"
        #expect(Cost.unreportedHeuristic([reported, unpriced], command: command, catalog: pricedCatalog) == 0)
        // A response of the fallback call counts the fallback's input.
        let fallback = APICall(model: "p", parts: [.text(String(repeating: "b", count: 40))])
        let withFallback = PlannedCommand(id: "f", plan: ExecutionPlan(calls: [APICall(model: "other", parts: [.text("x")])], fallbackCall: fallback))
        let answered = CallResponse(callIndex: 0, text: "", model: "p", finishReason: "stop", usage: .unreported)
        #expect(Cost.unreportedHeuristic([answered], command: withFallback, catalog: pricedCatalog) == 10)

        // The ledger holds the larger of the estimate and the count, never less than the estimate.
        var unknown = Cost.zero
        unknown.unreportedCalls = 1
        let ledger = CostLedger(limit: 10_000)
        #expect(ledger.reserve(100))
        ledger.settle(reserved: 100, cost: unknown, held: 2006)
        #expect(ledger.heldForUnreported == 2006 && ledger.spent == 0)
        #expect(ledger.reserve(100))
        ledger.settle(reserved: 100, cost: unknown, held: 3)
        #expect(ledger.heldForUnreported == 2106, "a short answer holds the estimate")
        ledger.settle(reserved: 0, cost: unknown, held: .infinity)
        #expect(ledger.heldForUnreported == 2106, "a count that is not finite is not held")
        // A known cost holds nothing, whatever the count.
        ledger.settle(reserved: 0, cost: Cost(outputUSD: 1), held: 5000)
        #expect(ledger.heldForUnreported == 2106 && ledger.spent == 1)
    }

    /// A gateway that never reports usage and answers long texts: the budget counts what came
    /// back, so the run stops near the limit instead of at many times it.
    @Test func aServerThatNeverReportsUsageAndAnswersLongTextsIsStoppedNearTheLimit() async throws {
        struct LongSilentProvider: GenerationCapability {
            var providerName: String { "silent" }
            func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
                GenerationResponse(text: String(repeating: "word ", count: 8000), model: request.model, usage: .unreported)
            }
        }
        // No max_tokens: the estimate assumes 1,024 output tokens ($1 + $2,048); each answer is
        // 40,000 bytes, 10,000 tokens by the count ($1 + $20,000): ten times the estimate.
        let command = PlannedCommand(id: "long", plan: ExecutionPlan(calls: [APICall(model: "p", parts: [.text("hi")])]))
        #expect(Cost.estimate(command, catalog: pricedCatalog) == 2049)
        let perCommand = 20_001.0
        let limit = 100_000.0
        var configuration = EngineConfiguration(retryPolicy: .none)
        configuration.catalog = pricedCatalog
        configuration.costLedger = CostLedger(limit: limit)
        let engine = try PipelineEngine(provider: LongSilentProvider(), configuration: configuration)
        let concurrency = 4
        var succeeded = 0, refused = 0
        await withTaskGroup(of: CommandOutcome.self) { group in
            var started = 0
            func add() {
                guard started < 200 else { return }
                started += 1
                group.addTask { await engine.run(command) }
            }
            for _ in 0..<concurrency { add() }
            for await outcome in group {
                if outcome.succeeded {
                    succeeded += 1
                    // The result's cost stays as the server left it: unknown, not a guess.
                    #expect(outcome.telemetry.cost?.totalUSD == 0 && outcome.telemetry.cost?.unreportedCalls == 1)
                } else {
                    #expect(outcome.error?.kind == .budgetExceeded)
                    refused += 1
                }
                add()
            }
        }
        let spent = Double(succeeded) * perCommand
        #expect(refused > 0, "the budget stopped the run")
        // What really went out: at most the limit, plus what the commands in flight at the last
        // admission spent beyond their estimates (holding the estimate alone let ~48 run: 9.6×).
        #expect(spent >= limit - perCommand && spent <= limit + Double(concurrency) * perCommand, "\(succeeded) commands, $\(spent) against $\(limit)")
        #expect(configuration.costLedger!.heldForUnreported == spent)
    }

    @Test func noTokenValidationAgainstAnUnknownCount() async throws {
        var command = PlannedCommand(id: "silent", plan: ExecutionPlan(calls: [APICall(model: "p", parts: [.text("hi")])]))
        command.tokenEstimate = TokenEstimate(minTokens: 1, expectedTokens: 2, maxTokens: 3)
        let engine = try PipelineEngine(provider: SilentUsageProvider(), configuration: EngineConfiguration(retryPolicy: .none))
        let outcome = await engine.run(command)
        #expect(outcome.succeeded)
        #expect(outcome.telemetry.tokenValidation == nil, "0 tokens would be a made-up actual")
    }
}

@Suite struct ZeroAttemptTests {
    @Test func aCallRefusedBeforeAnythingWasSentMadeNoAttempt() async throws {
        for kind in [APIError.Kind.capabilityMissing, .invalidCommand] {
            let provider = ScriptedProvider(script: ["m": [.fail(APIError(kind, "request part 0 cannot be sent", path: "parts[0]"))]])
            let engine = try PipelineEngine(provider: provider, configuration: EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 3, baseDelay: .zero, jitter: 0)))
            let outcome = await engine.run(PlannedCommand(id: "refused", plan: ExecutionPlan(calls: [APICall(model: "m", parts: [.text("x")])])))
            #expect(outcome.error?.kind == kind)
            #expect(outcome.telemetry.calls.map(\.attempts) == [0], "\(kind): nothing was sent")
            #expect(outcome.telemetry.retries == 0)
        }
        // A failure the server answered is an attempt.
        let answered = ScriptedProvider(script: ["m": [.fail(APIError(.providerError, "HTTP 400: bad request"))]])
        let engine = try PipelineEngine(provider: answered, configuration: EngineConfiguration(retryPolicy: .none))
        let outcome = await engine.run(PlannedCommand(id: "sent", plan: ExecutionPlan(calls: [APICall(model: "m", parts: [.text("x")])])))
        #expect(outcome.telemetry.calls.map(\.attempts) == [1])
    }
}

/// Takes PNG images inline, up to `limit` bytes; uploads everything else.
private struct InlineImagesProvider: GenerationCapability, UploadsCapability, InlineFilesCapability {
    let base: UploadingProvider
    var limit = 64
    var providerName: String { "inline-images" }
    func generate(_ request: GenerationRequest) async throws -> GenerationResponse { try await base.generate(request) }
    func upload(_ file: FileUpload) async throws -> FileReference { try await base.upload(file) }
    func inlineLimit(for mimeType: String) -> Int? { mimeType == "image/png" ? limit : nil }
}

@Suite struct InlineFilesTests {
    @Test func anImageGoesInlineAndOtherFilesUpload() async throws {
        let dir = try temporaryDirectory(files: ["a.png": "PNGBYTES", "b.pdf": "PDF"])
        let provider = InlineImagesProvider(base: UploadingProvider(base: RecordingProvider(clock: ManualClock())))
        let parts: [APIPart] = [
            .filePlaceholder(FilePlaceholder(path: dir.appendingPathComponent("a.png").path)),
            .filePlaceholder(FilePlaceholder(path: dir.appendingPathComponent("b.pdf").path)), .text("q"),
        ]
        let state = ExecutionState(command: PlannedCommand(
            id: "i", plan: ExecutionPlan(calls: [APICall(model: "m", parts: parts), APICall(model: "m", parts: [parts[0], .text("r")])])))
        let next = try await UploadStage().run(state, provider: provider)
        let image = APIPart.inline(InlineData(mimeType: "image/png", data: Data("PNGBYTES".utf8)))
        #expect(next.calls[0].parts[0] == image)
        #expect(next.calls[1].parts[0] == image, "a file named twice is read once and used twice")
        #expect(next.calls[0].parts[1] == .fileRef(FileReference(uri: "test://b.pdf", mimeType: "application/pdf")))
        #expect(next.telemetry.uploads == UploadCounts(performed: 1), "an inlined image is no upload")
        #expect(provider.base.recorder.snapshot.uploads.count == 1)
    }

    @Test func anImageOverTheProvidersCapFailsNamingThePartAndTheLimit() async throws {
        let dir = try temporaryDirectory(files: ["big.png": String(repeating: "x", count: 65)])
        let provider = InlineImagesProvider(base: UploadingProvider(base: RecordingProvider(clock: ManualClock())))
        let state = ExecutionState(command: PlannedCommand(
            id: "i", plan: ExecutionPlan(calls: [APICall(model: "m", parts: [.filePlaceholder(FilePlaceholder(path: dir.appendingPathComponent("big.png").path)), .text("q")])])))
        do {
            _ = try await UploadStage().run(state, provider: provider)
            Issue.record("an image over the cap was sent")
        } catch {
            #expect(error.kind == .invalidCommand)
            #expect(error.path == "plan.calls[0].parts[0]")
            #expect(error.message.contains("65 bytes") && error.message.contains("at most 64 bytes"))
        }
        // At the cap exactly it goes.
        let exact = try temporaryDirectory(files: ["ok.png": String(repeating: "x", count: 64)])
        let fits = ExecutionState(command: PlannedCommand(
            id: "i", plan: ExecutionPlan(calls: [APICall(model: "m", parts: [.filePlaceholder(FilePlaceholder(path: exact.appendingPathComponent("ok.png").path)), .text("q")])])))
        let next = try await UploadStage().run(fits, provider: provider)
        #expect(next.calls[0].parts[0].placeholder == nil)
    }
}

@Suite struct UnreportedUsageReportTests {
    /// A two-call command whose second call's server sent no usage: the command's counts are
    /// null; the report adds up the call that reported (a lower bound) and counts the other.
    @Test func theReportCountsUnreportedCallsAndAddsUpWhatWasReported() {
        let record = #"{"id":"a","index":0,"status":"succeeded","responses":["#
            + #"{"call_index":0,"text":"x","model":"m","finish_reason":"stop","usage":{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14,"cached_tokens":2}},"#
            + #"{"call_index":1,"text":"y","model":"m","finish_reason":"stop","usage":{"prompt_tokens":null,"completion_tokens":null,"total_tokens":null,"cached_tokens":null,"unreported_calls":1}}],"#
            + #""usage":{"prompt_tokens":null,"completion_tokens":null,"total_tokens":null,"cached_tokens":null,"unreported_calls":1},"#
            + #""telemetry":{"provider":"p","used_fallback":false,"primary_error":null,"retries":0,"retry_wait_ms":0.0,"calls":[],"#
            + #""durations_ms":{"total":1},"uploads":{"performed":0,"reused":0,"skipped":0},"cache":null,"token_validation":null,"#
            + #""cost":{"usd":0.5,"unpriced_calls":0,"unreported_calls":1}},"metadata":{}}"#
        var report = RunReport()
        #expect(report.add(line: Array(record.utf8), source: "r.jsonl", line: 1) == nil)
        let t = report.totals
        #expect(t.unreportedCalls == 1)
        #expect(t.inputTokens == 10 && t.outputTokens == 4 && t.cachedTokens == 2)
        #expect(report.rows.first?.unreportedCalls == 1)
    }
}
