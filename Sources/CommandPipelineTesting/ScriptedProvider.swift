import CommandPipeline
import Synchronization

/// A provider that answers from a script, for tests of code that uses an engine: per model,
/// a list of steps taken one per request (the last one repeats). It records every request,
/// and streams (when asked) by splitting its answer at spaces.
public final class ScriptedProvider: GenerationCapability, StreamingCapability {
    public enum Step: Sendable {
        /// Answer with this text.
        case answer(String)
        /// Fail with this error.
        case fail(APIError)
        /// Stream these pieces, then fail with this error (as a connection dropping mid-answer).
        case breakAfter([String], APIError)
    }

    public let providerName: String
    private let script: [String: [Step]]
    private let fallback: Step
    private let state = Mutex<(requests: [GenerationRequest], taken: [String: Int])>(([], [:]))

    /// `script[model]` is taken step by step; models without a script get `otherwise`.
    public init(name: String = "scripted", script: [String: [Step]] = [:], otherwise: Step = .answer("ok")) {
        self.providerName = name
        self.script = script
        self.fallback = otherwise
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

    private func response(_ text: String, _ request: GenerationRequest) -> GenerationResponse {
        GenerationResponse(text: text, model: request.model, usage: Usage(promptTokens: 1, completionTokens: max(1, text.utf8.count / 4)))
    }

    public func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        switch next(for: request) {
        case .answer(let text): return response(text, request)
        case .fail(let error), .breakAfter(_, let error): throw error
        }
    }

    public func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> {
        let step = next(for: request)
        return AsyncThrowingStream { continuation in
            switch step {
            case .answer(let text):
                var words = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                for i in words.indices.dropLast() { words[i] += " " }
                for word in words where !word.isEmpty { continuation.yield(.delta(word)) }
                continuation.yield(.completed(response(text, request)))
                continuation.finish()
            case .fail(let error):
                continuation.finish(throwing: error)
            case .breakAfter(let pieces, let error):
                for piece in pieces { continuation.yield(.delta(piece)) }
                continuation.finish(throwing: error)
            }
        }
    }
}
