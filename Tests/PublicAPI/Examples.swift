// The examples of README.md, Design/extending.md and Design/architecture.md, plus a provider with
// every capability and a batch collect, as a user outside this package writes them: typechecked
// against the built modules under another package name (so `package` declarations are not seen)
// by PublicSurfaceTests.theExamplesCompileWithThePublicAPIOnly. Not part of any target.
import CommandPipeline
import CommandPipelineHTTP
import CommandPipelineBatch
import CommandPipelineReport
import CommandPipelineTesting
import Foundation
import Synchronization

// README, first example
func readme1() async {
    let engine = PipelineEngine(provider: MockProvider.make())
    let command = PlannedCommand(
        id: "paper-42",
        plan: ExecutionPlan(
            calls: [APICall(model: "mock", parts: [.text("List the three main claims.")])],
            sharedParts: [.text("…the paper…")],
            fallbackCall: APICall(model: "mock-lite", parts: [.text("List the three main claims.")]),
            cache: CachePlan(ttlSeconds: 3600)))
    switch await engine.executeWithFallback(command) {
    case .success(let finalized):
        print(finalized.responses[0].text, finalized.usage.totalTokens, finalized.telemetry.cache?.created ?? false)
    case .failure(let error):
        print(error.kind, error.message, error.path ?? "")
    }
    let outcome = await engine.run(command)
    print(outcome.partialResponses.count, outcome.failedCalls, outcome.telemetry.retries)
    for await event in engine.events(for: command) {
        if case .textDelta(_, let text) = event.kind { print(text, terminator: "") }
    }
}

// README, second example
func readme2() async throws {
    let environment = ProcessInfo.processInfo.environment
    let openAI = OpenAIProvider.make(OpenAIConfiguration(
        baseURL: URL(string: "http://127.0.0.1:8000/v1")!,
        apiKey: APIKey.fromEnvironment("OPENAI_API_KEY", in: environment),
        capabilities: [.generation, .streaming]))
    let gemini = GeminiProvider.make(GeminiConfiguration(
        apiKey: APIKey.fromEnvironment("GEMINI_API_KEY", in: environment)))
    let anthropic = AnthropicProvider.make(AnthropicConfiguration(
        apiKey: APIKey.fromEnvironment("ANTHROPIC_API_KEY", in: environment),
        capabilities: [.generation, .streaming, .tokenCounting]))
    let configuration = EngineConfiguration(retryPolicy: RetryPolicy(maxAttempts: 4), callTimeout: .seconds(60))
    let engine = try PipelineEngine(provider: openAI, configuration: configuration)
    let answer = try await engine.execute(PlannedCommand(
        id: "q1", plan: ExecutionPlan(call: APICall(model: "gpt-4o-mini", parts: [.text("Say hello.")])))).get()
    print(answer.responses[0].text, gemini.providerName, anthropic.providerName)
}

// extending.md: a hook
struct TeamPolicy: CommandHook {
    let name = "team-policy"
    let team: String
    func beforeCommand(_ command: PlannedCommand, context: HookContext) async throws -> PlannedCommand {
        for call in command.plan.calls {
            for case .text(let text) in call.parts where text.contains("sk-") {
                throw APIError(.invalidCommand, "a prompt seems to hold an API key", path: "plan.calls")
            }
        }
        var command = command
        command.metadata["team"] = .string(team)
        return command
    }
    func streamChunk(_ text: String, call: Int, context: HookContext) {
        context.updateScratch("chars", default: 0) { $0 += text.count }
    }
    func afterSuccess(_ result: FinalizedCommand, context: HookContext) async throws {
        print("\(context.commandID): \(context[scratch: "chars"] as? Int ?? 0) characters streamed in \(context.elapsed)")
    }
    func event(_ event: PipelineEvent.Kind, context: HookContext) {
        if case .attemptFailed(_, _, let error, _) = event { print(error) }
    }
}
func hook(provider: any GenerationCapability) throws {
    var configuration = EngineConfiguration()
    configuration.hooks = [TeamPolicy(team: "search")]
    configuration.secrets = ["sk-0123456789abcdef"]
    _ = try PipelineEngine(provider: provider, configuration: configuration)
}

// extending.md: a sink
final class FailedIDs: ResultSink {
    let name = "failed-ids"
    let priority = 5
    private let ids = Mutex<[String]>([])
    func enabled(for delivery: ResultDelivery) -> Bool { delivery.status == .failed }
    func deliver(_ delivery: ResultDelivery) async throws { ids.withLock { $0.append(delivery.commandID) } }
    var collected: [String] { ids.withLock { $0 } }
}
func sink(commands: [PlannedCommand]) async throws {
    let failed = FailedIDs()
    let dispatcher = SinkDispatcher(
        sinks: [failed, try JSONLinesFileSink(path: "results.jsonl")], timeout: .seconds(10),
        onFailure: { print("sink problem:", $0) })
    let engine = PipelineEngine(provider: MockProvider.make())
    let runID = ResultDelivery.makeRunID()
    for (index, command) in commands.enumerated() {
        let outcome = await engine.run(command, index: index)
        dispatcher.submit(ResultDelivery(runID: runID, outcome: outcome, index: index))
    }
    let problems = await dispatcher.finish(within: .seconds(30))
    print(failed.collected, problems)
}

// extending.md: the catalog
func catalogExample(provider: any GenerationCapability) throws {
    var catalog = ModelCatalog.builtin
    catalog.add(ModelInfo(
        name: "local-llama-70b", provider: "openai", contextWindow: 131_072, maxOutputTokens: 8192,
        inputModalities: [.text], prices: ModelPrices(input: 0.20, cachedInput: 0.20, output: 0.60),
        source: "our GPU bill, 2026-11"))
    var configuration = EngineConfiguration()
    configuration.catalog = catalog
    configuration.costLedger = CostLedger(limit: 25)
    configuration.onUnknownModel = { print("not in the catalog:", $0) }
    _ = try PipelineEngine(provider: provider, configuration: configuration)
}

// architecture.md: a stage
public struct RedactStage: ExecutionStage {
    public var name: String { "redact" }
    public func applies(to state: ExecutionState) -> Bool { !state.responses.isEmpty }
    public func execute(_ state: ExecutionState, context: StageContext) async throws(APIError) -> ExecutionState {
        context.log.record(.textDelta(call: 0, text: ""))
        return state.with(responses: state.responses.map { var r = $0; r.text = r.text.replacing(/\S+@\S+/, with: "[email]"); return r })
    }
}
func stage(provider: any GenerationCapability, configuration: EngineConfiguration) throws {
    _ = try PipelineEngine(provider: provider, configuration: configuration)
        .insertingStage(RedactStage(), before: "telemetry")
}

// A provider of one's own, with every capability.
struct EchoProvider: GenerationCapability, StreamingCapability, TokenCountingCapability, UploadsCapability, CachingCapability, BatchCapability {
    var providerName: String { "echo" }
    func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        GenerationResponse(text: request.parts.map(\.typeName).joined(), model: request.model, usage: Usage(promptTokens: 1, completionTokens: 1))
    }
    func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> {
        AsyncThrowingStream { $0.finish() }
    }
    func countTokens(_ request: GenerationRequest) async throws -> Int { 1 }
    func upload(_ file: FileUpload) async throws -> FileReference {
        let bytes = try await file.contents()
        return FileReference(uri: "echo://\(file.path)?bytes=\(bytes.count)", mimeType: file.mimeType)
    }
    func createCache(_ context: GenerationRequest, key: String, ttlSeconds: Int) async throws -> CacheReference { throw APIError(.providerError, "no") }
    func cache(forKey key: String) async throws -> CacheReference? { nil }
    var batchLimits: BatchLimits { BatchLimits(maxRequests: 10, maxBytes: 1000) }
    func batchSize(of request: BatchRequest) throws -> Int { 1 }
    func submitBatch(_ requests: [BatchRequest], marker: BatchMarker) async throws -> BatchJob { throw APIError(.providerError, "no") }
    func findBatch(_ marker: BatchMarker) async throws -> BatchLookup { throw APIError(.providerError, "no") }
    func batchStatus(_ jobID: String) async throws -> BatchJob { throw APIError(.providerError, "no") }
    func batchResults(_ jobID: String) async throws -> [BatchResult] { [] }
    func cancelBatch(_ jobID: String) async throws -> BatchJob { throw APIError(.providerError, "no") }
}

// Batch from Swift
func batch() async throws {
    let run = try BatchRun(jobFile: "/tmp/x.job", provider: MockProvider.make())
    _ = try await run.collect { _ in true }
}

// The response store (README "Response cache"), and a store of one's own.
final class NoStore: ResponseCache {
    func answer(for key: String) -> GenerationResponse? { nil }
    func store(_ answer: GenerationResponse, for key: String) {}
}
func responseCache() throws {
    var configuration = EngineConfiguration()
    configuration.responseCache = InMemoryResponseCache(maxBytes: 1 << 20)
    configuration.responseCache = NoStore()
    _ = try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
}

// A run's results folded into a report (README "Seeing a run"), as `pipeline report` does.
func report(results: URL) throws -> String {
    var report = RunReport()
    let text = try String(contentsOf: results, encoding: .utf8)
    for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        report.add(line: Array(line.utf8), source: results.lastPathComponent, line: number + 1)
    }
    let rows = report.rows.map { "\($0.provider)/\($0.model): \($0.calls) calls, p95 \($0.p95), \($0.failed) failed, $\($0.costUSD)" }
    let failures = report.failures.map { "\($0.kind) × \($0.count): \($0.samples.first ?? "")" }
    let cache = "\(report.cache.uploadsReused) uploads reused, \(report.cache.responseCacheHits) response-cache hits"
    return (["\(report.totals.commands) commands, \(report.totals.failed) failed, $\(report.totals.costUSD)", cache] + rows + failures
        + report.badLines.map { "\($0.source):\($0.line): \($0.problem)" }).joined(separator: "\n")
}

// Routing from Swift (README "Routing across deployments"): the `--deployments` file's format.
func routing(deployments: String) throws -> PipelineEngine {
    var configuration = EngineConfiguration()
    try configuration.routeDeployments(file: deployments, caFile: nil)
    return try PipelineEngine(provider: MockProvider.make(), configuration: configuration)
}
