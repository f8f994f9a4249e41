import CommandPipeline
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The native Gemini API (`v1beta`): generation, streaming, uploads through the Files API,
/// explicit caches (`cachedContents`), token counting (`countTokens`) and batches. `make`
/// returns an adapter whose capability accessors answer the configuration's `capabilities`
/// (all of them by default), as the OpenAI and Anthropic providers' do.
public enum GeminiProvider {
    public static let name = "gemini"

    public static func make(_ configuration: GeminiConfiguration) -> any GenerationCapability {
        GeminiAdapter(configuration)
    }
}

/// The Gemini adapter. Never retries: the engine's retry layer does.
public struct GeminiAdapter: GenerationCapability, StreamingCapability, UploadsCapability, CachingCapability, TokenCountingCapability {
    let core: GeminiCore
    public var providerName: String { GeminiProvider.name }

    /// The adapter as its concrete type, for what only Gemini has (`deleteCache`); the engine
    /// takes `GeminiProvider.make(_:)`.
    public init(_ configuration: GeminiConfiguration) { core = GeminiCore(configuration: configuration) }

    private var has: Set<ProviderCapability> { core.configuration.capabilities }
    public var uploads: (any UploadsCapability)? { has.contains(.uploads) ? self : nil }
    public var caching: (any CachingCapability)? { has.contains(.caching) ? self : nil }
    public var streaming: (any StreamingCapability)? { has.contains(.streaming) ? self : nil }
    public var tokenCounting: (any TokenCountingCapability)? { has.contains(.tokenCounting) ? self : nil }
    package var offersBatch: Bool { has.contains(.batch) }
    // Everything passes `scrub` (Transport/Scrubbing.swift): no key reaches the engine.
    private var scrub: ServerText { ServerText(key: core.configuration.apiKey) }
    public func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        try await scrub.scrubbing { scrub.scrub(try await core.generate(request)) }
    }
    public func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> { scrub.scrub(core.stream(request)) }
    public func upload(_ file: FileUpload) async throws -> FileReference { try await scrub.scrubbing { try await core.upload(file) } }
    public func createCache(_ context: GenerationRequest, key: String, ttlSeconds: Int) async throws -> CacheReference {
        let request = CacheRequest(context, key: key, ttlSeconds: ttlSeconds)
        return try await scrub.scrubbing { scrub.scrub(try await core.createCache(request)) }
    }
    public func cache(forKey key: String) async throws -> CacheReference? {
        try await scrub.scrubbing { try await core.cache(forKey: key).map(scrub.scrub) }
    }
    public func countTokens(_ request: GenerationRequest) async throws -> Int { try await scrub.scrubbing { try await core.countTokens(request) } }
    /// Deletes a cache (`DELETE cachedContents/{id}`), e.g. when a run is done with it.
    public func deleteCache(_ reference: CacheReference) async throws { try await scrub.scrubbing { try await core.deleteCache(id: reference.id) } }
}

/// The client, request building and error mapping behind the adapter.
final class GeminiCore: Sendable {
    let configuration: GeminiConfiguration
    let builder: GeminiRequestBuilder
    let errors: GeminiErrorMapping
    /// Every request goes through it: endpoint rules, the key, the status check, error mapping.
    let exchange: ProviderExchange<GeminiErrorMapping>
    private var provider: String { GeminiProvider.name }

    init(configuration: GeminiConfiguration) {
        self.configuration = configuration
        builder = GeminiRequestBuilder(providerName: GeminiProvider.name)
        errors = GeminiErrorMapping(configuration: configuration, providerName: GeminiProvider.name)
        exchange = ProviderExchange(
            client: HTTPClient(requestTimeout: configuration.requestTimeout, maxConnectionsPerHost: configuration.maxConnectionsPerHost, caFile: configuration.caFile, responseHeaders: configuration.responseHeaders), errors: errors, endpointProblem: configuration.endpointProblem,
            credentials: configuration.apiKey.map { ["x-goog-api-key": $0.value] } ?? [:], requestTimeout: configuration.requestTimeout)
    }

    // MARK: generation

    func generate(_ generation: GenerationRequest) async throws(APIError) -> GenerationResponse {
        let body = try builder.body(for: generation)
        let url = configuration.url(GeminiConfiguration.modelPath(generation.model) + ":generateContent")
        let response = try await exchange.send(exchange.request(url, json: body))
        var assembler = GeminiResponses.Assembler(requestedModel: generation.model, provider: provider, serverText: ServerText(key: configuration.apiKey))
        do throws(APIError) {
            _ = try assembler.take(try GeminiResponses.parse(response.body, provider: provider))
            return try assembler.response(endpoint: DisplayURL.endpoint(url))
        } catch {
            // An answer refused after it was made (blocked, no text) was billed for what it reported.
            throw error.billed(assembler.usage)
        }
    }

    func stream(_ generation: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> {
        GenerationStream.run { continuation in try await self.streamInto(continuation, generation) }
    }

    /// `streamGenerateContent?alt=sse`: one `data:` event per partial response and no end
    /// marker — the end of the body ends it. A stream that ends before a finish reason, or
    /// whose connection drops, is a retryable failure, never a success.
    private func streamInto(
        _ continuation: AsyncThrowingStream<GenerationChunk, any Error>.Continuation, _ generation: GenerationRequest
    ) async throws(APIError) -> GenerationResponse {
        let body = try builder.body(for: generation)
        let url = configuration.url(GeminiConfiguration.modelPath(generation.model) + ":streamGenerateContent", query: "alt=sse")
        let endpoint = DisplayURL.endpoint(url)
        var assembler = GeminiResponses.Assembler(requestedModel: generation.model, provider: provider, serverText: ServerText(key: configuration.apiKey))
        var parser = ServerSentEventParser()
        var events = 0
        var head = Data()
        do {
            let response = try await exchange.stream(exchange.request(url, json: body))
            func take(_ batch: [ServerSentEventParser.Event]) throws(APIError) {
                for event in batch {
                    events += 1
                    let payload: JSONValue
                    do throws(JSONParser.SyntaxError) {
                        payload = try JSONParser.parse(Array(event.data.utf8))
                    } catch {
                        throw APIError(
                            .providerError, "the stream from \(endpoint) sent an event that is not JSON (\(error.message))", provider: provider,
                            retryable: true, code: "stream_malformed")
                    }
                    let delta = try assembler.take(payload)
                    if !delta.isEmpty { continuation.yield(.delta(delta)) }
                    for call in assembler.completedToolCalls() { continuation.yield(.toolCall(call)) }
                }
            }
            for try await piece in response.body {
                if head.count < 4096 { head.append(piece.prefix(4096 - head.count)) }
                try take(parser.feed(piece))
            }
            try take(parser.finish())
        } catch let error as APIError {
            // A stream that broke after reporting usage was billed for it.
            throw error.billed(assembler.usage)
        } catch {
            throw errors.error(transport: error, endpoint: endpoint).billed(assembler.usage)
        }
        guard events > 0 else {
            let preview = ServerText(key: configuration.apiKey).preview(String(decoding: head, as: UTF8.self), limit: 200)
            throw APIError(
                .providerError, "the stream from \(endpoint) held no server-sent events\(preview.isEmpty ? " (empty body)" : ": \(preview)")",
                provider: provider, retryable: true, code: "stream_truncated")
        }
        guard assembler.finishReason != nil else {
            throw APIError(
                .providerError, "the stream from \(endpoint) ended before a finish reason: the answer was cut off", provider: provider,
                retryable: true, code: "stream_truncated"
            ).billed(assembler.usage)
        }
        do throws(APIError) {
            return try assembler.response(endpoint: endpoint)
        } catch {
            throw error.billed(assembler.usage)
        }
    }

    // MARK: token counting

    func countTokens(_ generation: GenerationRequest) async throws(APIError) -> Int {
        let body = try builder.countBody(for: generation)
        let url = configuration.url(GeminiConfiguration.modelPath(generation.model) + ":countTokens")
        let response = try await exchange.send(exchange.request(url, json: body))
        guard let object = try GeminiResponses.parse(response.body, provider: provider).objectValue else {
            throw APIError(.providerError, "countTokens answered with something other than an object", provider: provider)
        }
        // An empty request counts 0 tokens, and the API then omits the field.
        let total = object["totalTokens"] == nil ? 0 : GeminiResponses.integer(object["totalTokens"])
        guard let total, Limits.reportedTokens.contains(total) else {
            throw APIError(.providerError, "countTokens answered with an invalid totalTokens: \(object["totalTokens"].map(JSONSerializer.serialize) ?? "null")", provider: provider)
        }
        return total
    }

    // MARK: caches

    private let knownCaches = Mutex<[String: CacheReference]>([:])

    func createCache(_ cacheRequest: CacheRequest) async throws(APIError) -> CacheReference {
        let body = try builder.cacheBody(for: cacheRequest, displayName: configuration.cacheNamePrefix + cacheRequest.key)
        let url = configuration.url("cachedContents")
        let response: HTTPClient.Response
        do {
            response = try await exchange.send(exchange.request(url, json: body))
        } catch {
            // Both run the command uncached, with the reason in `uncached_reason`.
            let reason: String
            if let below = Self.belowMinimum(error) {
                reason = "the shared context is below the model's minimum size for a cache (\(below))"
            } else if Self.withoutCaches(error) {
                reason = "the server has no explicit caches (\(ServerText(key: configuration.apiKey).preview(error.message, limit: 160)))"
            } else {
                throw error
            }
            var failure = error
            failure.kind = .cacheFailed
            failure.code = APIError.cacheBelowMinimumCode
            failure.retryable = false
            failure.message = reason
            throw failure
        }
        guard let object = try GeminiResponses.parse(response.body, provider: provider).objectValue,
            var reference = reference(object, key: cacheRequest.key, model: cacheRequest.model)
        else {
            throw APIError(.cacheFailed, "cachedContents.create answered without a cache name", provider: provider)
        }
        // Creating the cache bills its tokens once at the input price (written: the cache-write
        // price, which Gemini models leave to the input price); storage is priced from the TTL.
        if let tokens = reference.tokenCount { reference.creationUsage = Usage(promptTokens: tokens, cacheCreationTokens: tokens) }
        knownCaches.withLock { $0[cacheRequest.key] = reference }
        return reference
    }

    /// A server that speaks the API without `cachedContents` (a mock, a proxy): 404 or 405, or
    /// the status `NOT_FOUND` / `UNIMPLEMENTED`.
    static func withoutCaches(_ error: APIError) -> Bool {
        error.code == "NOT_FOUND" || error.code == "UNIMPLEMENTED" || error.message.hasPrefix("HTTP 404") || error.message.hasPrefix("HTTP 405")
    }

    /// The API's 400 for a context below the model's minimum: "Cached content is too small.
    /// total_token_count=…, min_total_token_count=…" (the minimum differs by model).
    static func belowMinimum(_ error: APIError) -> String? {
        guard error.code == "INVALID_ARGUMENT" || error.code == "FAILED_PRECONDITION" || error.code == nil else { return nil }
        let message = error.message
        guard message.localizedCaseInsensitiveContains("too small") || message.contains("min_total_token_count") else { return nil }
        if let range = message.range(of: "total_token_count=") {
            return String(message[range.lowerBound...].prefix(80)).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return "the server said the cached content is too small"
    }

    private func reference(_ object: JSONObject, key: String, model: String) -> CacheReference? {
        guard let name = object["name"]?.stringValue, name.hasPrefix("cachedContents/") else { return nil }
        let tokens = GeminiResponses.integer(object["usageMetadata"]?.objectValue?["totalTokenCount"]).map { Limits.reportedTokens.clamp($0) }
        return CacheReference(
            id: name, key: key, model: model, tokenCount: tokens, createdAt: Date(),
            expiresAt: object["expireTime"]?.stringValue.flatMap(Self.timestamp))
    }

    /// A cache made earlier for `key`: one this adapter made, else one listed by the server
    /// under the same display name and model that lives at least another minute.
    func cache(forKey key: String) async throws(APIError) -> CacheReference? {
        let now = Date()
        if let known = knownCaches.withLock({ $0[key] }), (known.expiresAt ?? .distantFuture) > now.addingTimeInterval(60) { return known }
        let displayName = configuration.cacheNamePrefix + key
        var pageToken: String?
        for _ in 0..<20 {
            var query = "pageSize=100"
            if let pageToken, let escaped = pageToken.addingPercentEncoding(withAllowedCharacters: .alphanumerics) { query += "&pageToken=\(escaped)" }
            let response: HTTPClient.Response
            do {
                response = try await exchange.send(exchange.request(configuration.url("cachedContents", query: query), method: "GET"))
            } catch {
                // A compatible server without listing: nothing to find.
                if Self.withoutCaches(error) { return nil }
                throw error
            }
            guard let object = try GeminiResponses.parse(response.body, provider: provider).objectValue else { return nil }
            for item in object["cachedContents"]?.arrayValue ?? [] {
                guard let item = item.objectValue, item["displayName"]?.stringValue == displayName else { continue }
                let model = item["model"]?.stringValue.map { $0.hasPrefix("models/") ? String($0.dropFirst(7)) : $0 }
                guard let reference = reference(item, key: key, model: model ?? ""),
                    (reference.expiresAt ?? .distantPast) > now.addingTimeInterval(60)
                else { continue }
                knownCaches.withLock { $0[key] = reference }
                return reference
            }
            guard let next = object["nextPageToken"]?.stringValue, !next.isEmpty else { return nil }
            pageToken = next
        }
        return nil
    }

    func deleteCache(id: String) async throws(APIError) {
        _ = try await exchange.send(exchange.request(configuration.url(GeminiConfiguration.escape(id)), method: "DELETE"))
        knownCaches.withLock { caches in caches = caches.filter { $0.value.id != id } }
    }

    /// RFC 3339 with 0–9 fraction digits, e.g. `2026-11-22T10:00:00.123456789Z`.
    static func timestamp(_ text: String) -> Date? {
        guard text.count <= 40 else { return nil }
        var whole = text
        var fraction = 0.0
        if let dot = text.firstIndex(of: ".") {
            let rest = text[text.index(after: dot)...]
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            fraction = Double("0." + digits) ?? 0
            whole = String(text[..<dot]) + String(rest.dropFirst(digits.count))
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: whole).map { $0.addingTimeInterval(fraction) }
    }

    // MARK: uploads

    /// The Files API's resumable protocol: `start` (size, type, display name) answers with an
    /// upload URL; the bytes go there in one `upload, finalize` request, streamed from the
    /// engine's descriptor as they go out (no copy; the size is the opened file's, and a file
    /// that changes size meanwhile fails the upload); then the file is polled until `ACTIVE`.
    func upload(_ file: FileUpload) async throws(APIError) -> FileReference {
        let displayName = URL(fileURLWithPath: file.path).lastPathComponent
        let opened: OpenedFile
        do {
            opened = try file.open()
        } catch {
            throw APIError(.uploadFailed, error.message, provider: provider)
        }

        var start = exchange.request(configuration.url("files", upload: true), json: ["file": ["displayName": .string(displayName)]])
        start.setValue("resumable", forHTTPHeaderField: "X-Goog-Upload-Protocol")
        start.setValue("start", forHTTPHeaderField: "X-Goog-Upload-Command")
        start.setValue(String(opened.size), forHTTPHeaderField: "X-Goog-Upload-Header-Content-Length")
        start.setValue(file.mimeType, forHTTPHeaderField: "X-Goog-Upload-Header-Content-Type")
        let started = try await exchange.send(start)
        guard let location = started.headers["x-goog-upload-url"], let uploadURL = sameOrigin(location) else {
            throw APIError(
                .uploadFailed, "the Files API did not answer the upload start with a usable X-Goog-Upload-URL (\(DisplayURL.endpoint(start.url)))",
                provider: provider)
        }

        // The upload URL authorises the bytes by itself: the key is not sent again.
        var bytes = exchange.bare(uploadURL)
        bytes.setValue("upload, finalize", forHTTPHeaderField: "X-Goog-Upload-Command")
        bytes.setValue("0", forHTTPHeaderField: "X-Goog-Upload-Offset")
        let response = try await exchange.upload(bytes, opened: opened)
        if let state = response.headers["x-goog-upload-status"], state.lowercased() != "final" {
            throw APIError(.uploadFailed, "the upload of '\(file.path)' did not finalise (X-Goog-Upload-Status: \(state))", provider: provider, retryable: true)
        }
        guard let answer = try GeminiResponses.parse(response.body, provider: provider).objectValue else {
            throw APIError(.uploadFailed, "the Files API answered the upload with something other than an object", provider: provider)
        }
        let uploaded = try await waitUntilActive(answer["file"]?.objectValue ?? answer, path: file.path)
        guard let uri = uploaded["uri"]?.stringValue, !uri.isEmpty else {
            throw APIError(.uploadFailed, "the Files API answered the upload of '\(file.path)' without a file uri", provider: provider)
        }
        return FileReference(uri: uri, mimeType: uploaded["mimeType"]?.stringValue ?? file.mimeType)
    }

    /// Polls `files/{id}` until `ACTIVE`, waiting longer each time, within `maxProcessingWait`.
    private func waitUntilActive(_ initial: JSONObject, path: String) async throws(APIError) -> JSONObject {
        var file = initial
        let clock = configuration.clock
        let deadline = clock.now + configuration.maxProcessingWait
        var wait = configuration.pollInterval
        while true {
            switch file["state"]?.stringValue ?? "ACTIVE" {
            case "ACTIVE", "STATE_UNSPECIFIED":
                return file
            case "FAILED":
                let why = file["error"]?.objectValue?["message"]?.stringValue ?? "no reason given"
                throw APIError(.uploadFailed, "Gemini could not process '\(path)' (state FAILED): \(why)", provider: provider, retryable: false)
            default:
                guard let name = file["name"]?.stringValue, let filePath = GeminiConfiguration.filePath(name) else {
                    throw APIError(.uploadFailed, "the uploaded file '\(path)' is still processing but has no usable name to poll (files/ and one segment)", provider: provider)
                }
                guard clock.now + wait <= deadline else {
                    throw APIError(
                        .uploadFailed, "'\(path)' (\(name)) was still \(file["state"]?.stringValue ?? "PROCESSING") after \(configuration.maxProcessingWait) of polling",
                        provider: provider, retryable: false, code: "processing_timeout")
                }
                do {
                    try await clock.sleep(for: wait)
                } catch {
                    throw APIError(.cancelled, "waiting for '\(path)' to become ACTIVE was cancelled", provider: provider)
                }
                wait = min(wait * 2, configuration.maxPollInterval)
                let response = try await exchange.send(exchange.request(configuration.url(filePath), method: "GET"))
                guard let polled = try GeminiResponses.parse(response.body, provider: provider).objectValue else {
                    throw APIError(.uploadFailed, "files.get answered with something other than an object", provider: provider)
                }
                file = polled["file"]?.objectValue ?? polled
            }
        }
    }

    /// The upload URL on the configured origin (as the SDK does): only its path and query are
    /// taken from the server, so the bytes never go to another host.
    private func sameOrigin(_ location: String) -> URL? {
        guard let given = URLComponents(string: location), !given.path.isEmpty,
            var origin = URLComponents(url: configuration.baseURL, resolvingAgainstBaseURL: false)
        else { return nil }
        origin.percentEncodedPath = given.percentEncodedPath
        origin.percentEncodedQuery = given.percentEncodedQuery
        return origin.url
    }
}
