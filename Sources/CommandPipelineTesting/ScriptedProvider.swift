import CommandPipeline
import Synchronization

/// A provider that answers from a script, for tests of code that uses an engine: per model,
/// a list of steps taken one per request (the last one repeats). It records every request,
/// and streams (when asked) by splitting its answer at spaces.
public final class ScriptedProvider: GenerationCapability, StreamingCapability {
    public indirect enum Step: Sendable {
        /// Answer with this text.
        case answer(String)
        /// Answer with this text and these tool calls (finish reason `tool_calls`); a stream
        /// delivers the text, then each call as a whole.
        case toolCalls([ToolCall], text: String = "")
        /// Fail with this error.
        case fail(APIError)
        /// Stream these pieces, then fail with this error (as a connection dropping mid-answer).
        case breakAfter([String], APIError)
        /// Wait `duration` on the provider's clock (a `ManualClock` in tests), then take `then`.
        case delay(Duration, then: Step)
        /// Never answer: wait until the request's task is cancelled, then throw
        /// `CancellationError` (as a server that never replies). `hangingCount` counts the waiters.
        case hang
    }

    public let providerName: String
    private let script: [String: [Step]]
    private let fallback: Step
    private let state = Mutex<(requests: [GenerationRequest], taken: [String: Int])>(([], [:]))
    private let clock: any PipelineClock
    /// Never advanced: `.hang` sleeps on it until cancelled.
    private let stopped = ManualClock()

    /// `script[model]` is taken step by step; models without a script get `otherwise`.
    /// `.delay` steps wait on `clock`.
    public init(name: String = "scripted", script: [String: [Step]] = [:], otherwise: Step = .answer("ok"), clock: (any PipelineClock)? = nil) {
        self.providerName = name
        self.script = script
        self.fallback = otherwise
        self.clock = clock ?? SystemClock()
    }

    /// Requests waiting in a `.hang` step right now.
    public var hangingCount: Int { stopped.sleeperCount }

    /// Waits (by yielding, bounded like `ManualClock.waitForSleepers`) until `count` requests hang.
    @discardableResult
    public func waitForHanging(_ count: Int, maxYields: Int = 5_000_000) async -> Bool {
        await stopped.waitForSleepers(count, maxYields: maxYields)
    }

    /// Takes `.delay` and `.hang` steps until a step that answers, fails or streams.
    private func settle(_ step: Step) async throws -> Step {
        var step = step
        while true {
            switch step {
            case .delay(let duration, let then):
                try await clock.sleep(for: duration)
                step = then
            case .hang:
                try await stopped.sleep(until: .seconds(1))
                throw CancellationError()   // not reached: nothing advances `stopped`
            case .answer, .toolCalls, .fail, .breakAfter:
                return step
            }
        }
    }

    /// Every request received, in order.
    public var requests: [GenerationRequest] { state.withLock { $0.requests } }

    private func next(for request: GenerationRequest) -> Step {
        state.withLock { state in
            state.requests.append(request)
            guard let steps = script[request.model], !steps.isEmpty else { return fallback }
            let n = state.taken[request.model, default: 0]
            state.taken[request.model] = n + 1
            return steps[min(n, steps.count - 1)]
        }
    }

    private func response(_ text: String, _ request: GenerationRequest, _ calls: [ToolCall] = []) -> GenerationResponse {
        GenerationResponse(
            text: text, model: request.model, finishReason: calls.isEmpty ? "stop" : "tool_calls",
            usage: Usage(promptTokens: 1, completionTokens: max(1, text.utf8.count / 4)), toolCalls: calls)
    }

    public func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        switch try await settle(next(for: request)) {
        case .answer(let text): return response(text, request)
        case .toolCalls(let calls, let text): return response(text, request, calls)
        case .fail(let error), .breakAfter(_, let error): throw error
        case .delay, .hang: throw CancellationError()   // settled away
        }
    }

    public func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> {
        let step = next(for: request)
        return AsyncThrowingStream { continuation in
            switch step {
            case .answer, .toolCalls, .fail, .breakAfter:
                play(step, request, continuation)
            case .delay, .hang:
                let task = Task {
                    do { play(try await settle(step), request, continuation) } catch { continuation.finish(throwing: error) }
                }
                continuation.onTermination = { _ in task.cancel() }
            }
        }
    }

    private func play(_ step: Step, _ request: GenerationRequest, _ continuation: AsyncThrowingStream<GenerationChunk, any Error>.Continuation) {
        switch step {
        case .answer(let text):
            var words = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            for i in words.indices.dropLast() { words[i] += " " }
            for word in words where !word.isEmpty { continuation.yield(.delta(word)) }
            continuation.yield(.completed(response(text, request)))
            continuation.finish()
        case .toolCalls(let calls, let text):
            if !text.isEmpty { continuation.yield(.delta(text)) }
            for call in calls { continuation.yield(.toolCall(call)) }
            continuation.yield(.completed(response(text, request, calls)))
            continuation.finish()
        case .fail(let error):
            continuation.finish(throwing: error)
        case .breakAfter(let pieces, let error):
            for piece in pieces { continuation.yield(.delta(piece)) }
            continuation.finish(throwing: error)
        case .delay, .hang:
            continuation.finish(throwing: CancellationError())   // settled away before
        }
    }
}
