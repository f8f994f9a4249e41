import Foundation
import Synchronization

/// The mock's behaviour, shared by every capability combination: deterministic and offline.
///
/// Answers `"echo: "` + the last text part of the effective parts. Each text part counts
/// ⌈utf8/4⌉ prompt tokens, each file or inline part 258; completion tokens are ⌈utf8(text)/4⌉;
/// `cached_tokens` are the tokens of shared parts served from a cache.
package final class MockCore: Sendable {
    package let configuration: MockConfiguration
    let caches: Mutex<[String: StoredCache]> = Mutex([:])
    let calls = Atomic<Int>(0)
    /// Uploads per file path and cache creations per key, for the fault plan's `uploadFailures`
    /// and `cacheFailures`.
    let sharedWorkRequests = Mutex<[String: Int]>([:])

    struct StoredCache {
        var reference: CacheReference
        var parts: [APIPart]
        var deadline: Duration
    }

    static let providerName = "mock"

    init(configuration: MockConfiguration) { self.configuration = configuration }

    static func tokens(of text: String) -> Int { (text.utf8.count + 3) / 4 }

    static func tokens(of parts: [APIPart]) -> Int {
        parts.reduce(0) { sum, part in
            switch part {
            case .text(let text): sum + tokens(of: text)
            case .fileRef, .filePlaceholder, .inline: sum + 258
            case .history(let h): sum + h.reduce(0) { $0 + tokens(of: $1.question) + tokens(of: $1.answer) }
            case .toolResult(let r): sum + tokens(of: r.contentText)
            }
        }
    }

    func cachedParts(_ reference: CacheReference?) throws -> [APIPart] {
        guard let reference else { return [] }
        guard let stored = caches.withLock({ $0[reference.key] }), stored.reference.id == reference.id else {
            throw APIError(.providerError, "mock: unknown cache '\(reference.id)'", provider: Self.providerName, code: "not_found")
        }
        return stored.parts
    }

    @inline(__always)
    func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        // Calls are numbered for the fault plan's draws only (an atomic add per call otherwise).
        let n = configuration.faults.isPresent ? calls.add(1, ordering: .relaxed).newValue : 0
        if configuration.failingModels.contains(request.model) {
            throw APIError(
                .providerError, "mock: model '\(request.model)' is unavailable", provider: Self.providerName,
                retryable: true, code: "unavailable")
        }
        var latency = configuration.latency
        if configuration.faults.isPresent, let faults = configuration.faults {
            let (fault, extra) = faults.draw(UInt64(bitPattern: Int64(n)))
            latency += extra
            switch fault {
            case .none: break
            case .retryable:
                throw APIError(
                    .providerError, "mock fault: model '\(request.model)' is temporarily unavailable", provider: Self.providerName,
                    retryable: true, code: "unavailable", retryAfter: faults.retryAfter)
            case .fatal:
                throw APIError(.providerError, "mock fault: request rejected for model '\(request.model)'", provider: Self.providerName, retryable: false, code: "invalid_request")
            case .hang:
                try await Latch.waitForCancellation()  // no timer: a hang costs nothing until cancelled
            }
        }
        if latency > .zero { try await configuration.clock.sleep(for: latency) }
        // The cache tested in place: reading `request.cache` copies the reference out of its box.
        let cached = request.hasCache ? try cachedParts(request.cache) : []
        let config = request.config
        return Self.answer(
            model: request.model, cached: cached, parts: request.parts, format: config.responseFormat,
            tools: config.tools, toolChoice: config.toolChoice)
    }

    package static func answer(
        model: String, cached: [APIPart], parts: [APIPart], format: JSONValue? = nil, tools: [ToolDefinition]? = nil, toolChoice: ToolChoice? = nil
    ) -> GenerationResponse {
        var last = ""
        for part in parts.reversed() { if case .text(let t) = part { last = t; break } }
        if last.isEmpty, !parts.contains(where: { if case .text = $0 { true } else { false } }) {
            for part in cached.reversed() { if case .text(let t) = part { last = t; break } }
        }
        let cachedTokens = tokens(of: cached)
        let prompt = cachedTokens + tokens(of: parts)
        if tools.isPresent {
            let calls = MockTools.calls(tools, choice: toolChoice, parts: parts, prompt: last)
            if !calls.isEmpty {
                let completion = calls.reduce(0) { $0 + tokens(of: JSONSerializer.serialize($1.wireValue)) }
                return GenerationResponse(
                    text: "", model: model, finishReason: "tool_calls",
                    usage: Usage(promptTokens: prompt, completionTokens: completion, cachedTokens: cachedTokens), toolCalls: calls)
            }
        }
        let text = MockTools.resultAnswer(parts)
            ?? (format.isPresent ? MockStructured.answer(format, prompt: last) ?? "echo: " + last : "echo: " + last)
        let completion = tokens(of: text)
        return GenerationResponse(
            text: text, model: model, finishReason: "stop",
            usage: Usage(promptTokens: prompt, completionTokens: completion, cachedTokens: cachedTokens))
    }

    /// The fault plan's scripted failure of this request for `name` (a file's path, a cache's
    /// key), when it is among the first `limit` for that name.
    private func scriptedFailure(of name: String, limit: Int, _ what: String, _ kind: APIError.Kind) -> APIError? {
        guard limit > 0 else { return nil }
        let n = sharedWorkRequests.withLock { counts -> Int in
            let n = counts[what + "\u{0}" + name, default: 0].addingSaturating(1)
            counts[what + "\u{0}" + name] = n
            return n
        }
        guard n <= limit else { return nil }
        return APIError(
            kind, "mock fault: \(what) \(n) of the first \(limit) failed (temporarily unavailable)", provider: Self.providerName,
            retryable: true, code: "unavailable", retryAfter: configuration.faults?.retryAfter)
    }

    func upload(_ file: FileUpload) async throws -> FileReference {
        if let faults = configuration.faults, let error = scriptedFailure(of: file.path, limit: faults.uploadFailures, "upload", .uploadFailed) {
            throw error
        }
        if configuration.uploadLatency > .zero { try await configuration.clock.sleep(for: configuration.uploadLatency) }
        let opened: OpenedFile
        do {
            opened = try file.open()
        } catch {
            throw APIError(.uploadFailed, error.message, provider: Self.providerName)
        }
        // Hashed through the engine's descriptor, off the concurrency pool, cancellable.
        let digest = Mutex(SHA256())
        try await opened.forEachChunk { chunk in digest.withLock { $0.update(chunk) } }
        return FileReference(uri: "mock://files/" + digest.withLock { $0.finalizeHex() }, mimeType: file.mimeType)
    }

    func createCache(_ request: CacheRequest) async throws -> CacheReference {
        if let faults = configuration.faults, let error = scriptedFailure(of: request.key, limit: faults.cacheFailures, "cache creation", .cacheFailed) {
            throw error
        }
        if configuration.cacheLatency > .zero { try await configuration.clock.sleep(for: configuration.cacheLatency) }
        let now = configuration.clock.now
        let reference = CacheReference(
            id: "mock-cache-\(request.key)", key: request.key, model: request.model, tokenCount: Self.tokens(of: request.parts),
            createdAt: Date(), expiresAt: Date().addingTimeInterval(TimeInterval(request.ttlSeconds)),
            creationUsage: Usage(promptTokens: Self.tokens(of: request.parts), cacheCreationTokens: Self.tokens(of: request.parts)))
        caches.withLock {
            $0[request.key] = StoredCache(reference: reference, parts: request.parts, deadline: now + .seconds(request.ttlSeconds))
        }
        return reference
    }

    func cache(forKey key: String) -> CacheReference? {
        let now = configuration.clock.now
        return caches.withLock { caches in
            guard let stored = caches[key] else { return nil }
            if now >= stored.deadline {
                caches[key] = nil
                return nil
            }
            return stored.reference
        }
    }

    func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let response = try await generate(request)
                    var words = response.text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                    for i in words.indices.dropLast() { words[i] += " " }
                    for word in words where !word.isEmpty { continuation.yield(.delta(word)) }
                    continuation.yield(.completed(response))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    func countTokens(_ request: GenerationRequest) throws -> Int {
        Self.tokens(of: try cachedParts(request.cache)) + Self.tokens(of: request.parts)
    }
}
