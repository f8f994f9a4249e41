import CommandPipeline

/// The shape every adapter's `stream` has: a task that yields deltas through the
/// continuation while it reads the wire, then the final answer as `.completed`, and ends
/// with the error it threw otherwise. Ending the consumer cancels the task (and so the request).
enum GenerationStream {
    static func run(
        _ body: @escaping @Sendable (AsyncThrowingStream<GenerationChunk, any Error>.Continuation) async throws -> GenerationResponse
    ) -> AsyncThrowingStream<GenerationChunk, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    continuation.yield(.completed(try await body(continuation)))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
