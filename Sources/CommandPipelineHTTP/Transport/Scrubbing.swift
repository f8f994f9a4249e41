import CommandPipeline
import Foundation

/// The last line of defence at an adapter's boundary: whatever an adapter hands the engine
/// — an answer's text, model and finish reason, a cache id, an error's message and code —
/// has the key removed, in full, before anything can print it. Messages that quote server
/// text also go through `ServerText.preview` where they are made (redact, then cut); this
/// pass catches the strings nobody thought of as server text (a `model` echoing a header).
/// Every public method of every adapter runs through it.
extension ServerText {
    func scrub(_ response: GenerationResponse) -> GenerationResponse {
        guard isActive else { return response }
        var response = response
        response.text = redact(response.text)
        response.model = preview(response.model, limit: 200)
        response.finishReason = preview(response.finishReason, limit: 100)
        if !response.toolCalls.isEmpty { response.toolCalls = response.toolCalls.map(scrub) }
        return response
    }

    /// A tool call with the key taken out of its name, id and every string of its arguments.
    func scrub(_ call: ToolCall) -> ToolCall {
        guard isActive else { return call }
        var call = call
        call.id = redact(call.id)
        call.name = redact(call.name)
        call.arguments = redactor.redact(call.arguments)
        call.unparsedArguments = call.unparsedArguments.map(redact)
        call.signature = call.signature.map(redact)
        return call
    }

    func scrub(_ reference: CacheReference) -> CacheReference {
        guard isActive else { return reference }
        var reference = reference
        reference.id = redact(reference.id)
        return reference
    }

    func scrub(_ error: any Error) -> any Error {
        guard isActive, var api = error as? APIError else { return error }
        api.message = redact(api.message)
        api.code = api.code.map { preview($0, limit: 100) }
        return api
    }

    /// Runs `body`, scrubbing what it throws.
    func scrubbing<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch { throw scrub(error) }
    }

    /// The stream with every delta, the final answer and any error scrubbed. Deltas are
    /// redacted as a stream (`StreamRedaction`): a key the server splits across two or more
    /// deltas is caught, and the deltas handed on, joined, equal the final answer's text.
    func scrub(_ stream: AsyncThrowingStream<GenerationChunk, any Error>) -> AsyncThrowingStream<GenerationChunk, any Error> {
        guard isActive else { return stream }
        let redactor = redactor
        return AsyncThrowingStream { continuation in
            let task = Task {
                var deltas = StreamRedaction(redactor)
                do {
                    for try await chunk in stream {
                        switch chunk {
                        case .delta(let text):
                            let ready = deltas.take(text)
                            if !ready.isEmpty { continuation.yield(.delta(ready)) }
                        case .toolCall(let call):
                            continuation.yield(.toolCall(scrub(call)))
                        case .completed(let response):
                            let rest = deltas.finish()
                            if !rest.isEmpty { continuation.yield(.delta(rest)) }
                            continuation.yield(.completed(scrub(response)))
                        }
                    }
                    let rest = deltas.finish()
                    if !rest.isEmpty { continuation.yield(.delta(rest)) }
                    continuation.finish()
                } catch {
                    // The text before the break goes on, except what may be the start of a key.
                    let rest = deltas.finishCut()
                    if !rest.isEmpty { continuation.yield(.delta(rest)) }
                    continuation.finish(throwing: scrub(error))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
