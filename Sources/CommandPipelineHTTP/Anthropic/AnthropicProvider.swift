import CommandPipeline
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An adapter for Anthropic's Messages API (and servers that speak it). `make` returns an
/// adapter whose capability accessors answer what the server was declared to have.
public enum AnthropicProvider {
    public static let name = "anthropic"

    public static func make(_ configuration: AnthropicConfiguration) -> any GenerationCapability {
        AnthropicAdapter(core: AnthropicCore(configuration: configuration))
    }
}

/// The Anthropic adapter.
public struct AnthropicAdapter: GenerationCapability, UploadsCapability, CachingCapability, StreamingCapability, TokenCountingCapability {
    let core: AnthropicCore
    public var providerName: String { AnthropicProvider.name }
    // Everything passes `scrub` (Transport/Scrubbing.swift): no key reaches the engine.
    var scrub: ServerText { ServerText(key: core.configuration.apiKey) }
    public func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        try await scrub.scrubbing { scrub.scrub(try await core.generate(request)) }
    }
    public func upload(_ file: FileUpload) async throws -> FileReference { try await scrub.scrubbing { try await core.upload(file) } }
    public func createCache(_ context: GenerationRequest, key: String, ttlSeconds: Int) async throws -> CacheReference {
        let request = CacheRequest(context, key: key, ttlSeconds: ttlSeconds)
        return try await scrub.scrubbing { scrub.scrub(try await core.createCache(request)) }
    }
    /// Anthropic has no cache to look up: the engine's registry remembers the prefixes it wrote.
    public func cache(forKey key: String) async throws -> CacheReference? { nil }
    public func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> { scrub.scrub(core.stream(request)) }
    public func countTokens(_ request: GenerationRequest) async throws -> Int { try await scrub.scrubbing { try await core.countTokens(request) } }

    private var has: Set<ProviderCapability> { core.configuration.capabilities }
    public var uploads: (any UploadsCapability)? { has.contains(.uploads) ? self : nil }
    public var caching: (any CachingCapability)? { has.contains(.caching) ? self : nil }
    public var streaming: (any StreamingCapability)? { has.contains(.streaming) ? self : nil }
    public var tokenCounting: (any TokenCountingCapability)? { has.contains(.tokenCounting) ? self : nil }
    package var offersBatch: Bool { has.contains(.batch) }
}

/// What every capability combination shares: the client, request building, error mapping.
final class AnthropicCore: Sendable {
    let configuration: AnthropicConfiguration
    let builder: AnthropicRequestBuilder
    let errors: AnthropicErrorMapping
    /// Every request goes through it: endpoint rules, the key, the status check, error mapping.
    let exchange: ProviderExchange<AnthropicErrorMapping>
    private var name: String { AnthropicProvider.name }

    init(configuration: AnthropicConfiguration) {
        self.configuration = configuration
        builder = AnthropicRequestBuilder(configuration: configuration, providerName: AnthropicProvider.name)
        errors = AnthropicErrorMapping(configuration: configuration, providerName: AnthropicProvider.name)
        // The key travels only in `x-api-key`, and only where the endpoint rules allow it.
        exchange = ProviderExchange(
            client: HTTPClient(requestTimeout: configuration.requestTimeout, maxConnectionsPerHost: configuration.maxConnectionsPerHost, caFile: configuration.caFile, responseHeaders: configuration.responseHeaders), errors: errors, endpointProblem: configuration.endpointProblem,
            credentials: configuration.apiKey.map { ["x-api-key": $0.value] } ?? [:],
            common: ["anthropic-version": AnthropicConfiguration.apiVersion], requestTimeout: configuration.requestTimeout)
    }

    /// Sends a JSON request to `{base}/v1/{path}` and returns the body of its 2xx answer.
    private func post(_ path: String, json: JSONValue) async throws(APIError) -> Data {
        try await exchange.send(exchange.request(configuration.endpoint(path), json: json)).body
    }

    func generate(_ generation: GenerationRequest) async throws(APIError) -> GenerationResponse {
        try checkCache(generation)
        let body = try builder.body(for: generation, purpose: .generate(stream: false))
        return try AnthropicResponses.message(try await post("messages", json: body), requestedModel: generation.model, provider: name)
    }

    /// A stored cache reference is not this adapter's: the engine then retries without it.
    private func checkCache(_ generation: GenerationRequest) throws(APIError) {
        guard let cache = generation.cache, cache.prefixPartCount == nil else { return }
        throw APIError(
            .providerError, "cache '\(cache.id)' is not an Anthropic prefix cache; Anthropic caches by prefix (cache_control), not by cache id",
            provider: name, code: "cache_not_prefix")
    }

    func countTokens(_ generation: GenerationRequest) async throws(APIError) -> Int {
        let body = try builder.body(for: generation, purpose: .countTokens)
        let data = try await post("messages/count_tokens", json: body)
        guard case .object(let object) = try AnthropicResponses.parse(data, provider: name), let count = object["input_tokens"]?.intValue,
            Limits.reportedTokens.contains(count)
        else {
            throw APIError(.providerError, "count_tokens answered without a valid input_tokens count", provider: name)
        }
        return count
    }

    /// Writes the prefix (system instruction and shared parts, breakpoint on the last) with a
    /// one-token request, so every call after it reads the cache, concurrent ones included.
    /// Below the model's minimum size nothing is cached and the API says nothing: the reference
    /// then reports 0 tokens and the calls still carry the breakpoint, at no extra cost.
    func createCache(_ cache: CacheRequest) async throws(APIError) -> CacheReference {
        let now = Date()
        let reference = CacheReference(
            id: "prefix:\(cache.key)", key: cache.key, model: cache.model, createdAt: now,
            expiresAt: now.addingTimeInterval(TimeInterval(max(0, cache.ttlSeconds))), prefixPartCount: cache.parts.count)
        let warmUp = GenerationRequest(
            model: cache.model, parts: cache.parts, config: GenerationConfig(systemInstruction: cache.systemInstruction), cache: reference)
        let body = try builder.body(for: warmUp, purpose: .warmUp)
        let response = try AnthropicResponses.message(try await post("messages", json: body), requestedModel: cache.model, provider: name)
        var written = reference
        written.tokenCount = response.usage.cacheCreationTokens.addingSaturating(response.usage.cachedTokens)
        // Billed like any request (the written prefix at the cache-write price, the rest at the
        // input price, one output token): priced on the command that created the cache.
        written.creationUsage = response.usage
        return written
    }

    func stream(_ generation: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> {
        GenerationStream.run { continuation in try await self.streamInto(continuation, generation) }
    }

    private func streamInto(_ continuation: AsyncThrowingStream<GenerationChunk, any Error>.Continuation, _ generation: GenerationRequest) async throws(APIError) -> GenerationResponse {
        try checkCache(generation)
        let body = try builder.body(for: generation, purpose: .generate(stream: true))
        let url = configuration.endpoint("messages").absoluteString
        var assembler = AnthropicResponses.StreamAssembler(requestedModel: generation.model)
        var parser = ServerSentEventParser()
        let errors = self.errors
        do {
            let response = try await exchange.stream(exchange.request(configuration.endpoint("messages"), json: body))
            func take(_ events: [ServerSentEventParser.Event]) throws(APIError) {
                for event in events where !assembler.finished {
                    if let delta = try assembler.take(event, provider: AnthropicProvider.name, text: ServerText(key: configuration.apiKey)) {
                        continuation.yield(.delta(delta))
                    }
                    for call in assembler.completedToolCalls() { continuation.yield(.toolCall(call)) }
                }
            }
            for try await piece in response.body {
                try take(parser.feed(piece))
                if assembler.finished { break }
            }
            if !assembler.finished { try take(parser.finish()) }
        } catch let error as APIError {
            // A stream that broke after message_start was billed for the usage it reported.
            throw error.billed(assembler.hasUsage ? assembler.usageSoFar : nil)
        } catch {
            throw errors.error(transport: error, endpoint: url).billed(assembler.hasUsage ? assembler.usageSoFar : nil)
        }
        guard assembler.finished else {
            throw APIError(
                .providerError, "the stream from \(url) ended before message_stop: the answer is incomplete (\(assembler.text.count) characters received)",
                provider: name, retryable: true, code: "stream_truncated"
            ).billed(assembler.hasUsage ? assembler.usageSoFar : nil)
        }
        // A whole stream opens with message_start (the usage's input side) and says why it
        // stopped (message_delta's stop_reason): without them it is a cut or forged stream,
        // never a success with zero usage.
        guard assembler.started, assembler.stopReason != nil else {
            let missing = [assembler.started ? nil : "message_start", assembler.stopReason == nil ? "a stop_reason" : nil].compactMap { $0 }
            throw APIError(
                .providerError, "the stream from \(url) came without \(missing.joined(separator: " and ")): the answer is incomplete (\(assembler.text.count) characters received)",
                provider: name, retryable: true, code: "stream_truncated")
        }
        return assembler.response
    }

    func upload(_ file: FileUpload) async throws(APIError) -> FileReference {
        let url = configuration.endpoint("files")
        let multipart: MultipartBody
        do {
            multipart = MultipartBody(
                fields: [], fileField: "file", file: try file.open(), filename: URL(fileURLWithPath: file.path).lastPathComponent, mimeType: file.mimeType)
        } catch {
            throw APIError(.uploadFailed, error.message, provider: name)
        }
        var request = exchange.request(url)
        request.setValue(AnthropicConfiguration.filesBeta, forHTTPHeaderField: "anthropic-beta")
        let response = try await exchange.upload(request, multipart: multipart)
        guard case .object(let object) = try AnthropicResponses.parse(response.body, provider: name), let id = object["id"]?.stringValue, !id.isEmpty else {
            throw APIError(.uploadFailed, "the Files API at \(url.absoluteString) answered without a file id", provider: name)
        }
        return FileReference(uri: id, mimeType: file.mimeType)
    }
}
