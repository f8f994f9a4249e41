import CommandPipeline
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An adapter for servers that speak OpenAI's Chat Completions protocol: OpenAI itself,
/// vLLM, Ollama, llama.cpp, LM Studio, OpenRouter, FakeAI, … `make` returns an adapter whose
/// capability accessors answer what the server was declared to have.
public enum OpenAIProvider {
    public static let name = "openai"

    public static func make(_ configuration: OpenAIConfiguration) -> any GenerationCapability {
        OpenAIAdapter(core: OpenAICore(configuration: configuration))
    }
}

/// The OpenAI-compatible adapter.
public struct OpenAIAdapter: GenerationCapability, UploadsCapability, StreamingCapability, InlineFilesCapability {
    let core: OpenAICore
    public var providerName: String { OpenAIProvider.name }
    // Everything passes `scrub` (Transport/Scrubbing.swift): no key reaches the engine.
    var scrub: ServerText { ServerText(key: core.configuration.apiKey) }
    public func generate(_ request: GenerationRequest) async throws -> GenerationResponse {
        try await scrub.scrubbing { scrub.scrub(try await core.generate(request)) }
    }
    public func upload(_ file: FileUpload) async throws -> FileReference { try await scrub.scrubbing { try await core.upload(file) } }
    public func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> { scrub.scrub(core.stream(request)) }

    public var uploads: (any UploadsCapability)? { core.configuration.capabilities.contains(.uploads) ? self : nil }
    public var streaming: (any StreamingCapability)? { core.configuration.capabilities.contains(.streaming) ? self : nil }
    package var offersBatch: Bool { core.configuration.capabilities.contains(.batch) }

    /// Images go inline (`image_url` with a data URL), uploads or not: Chat Completions takes an
    /// image only by URL, and refuses an uploaded file's id for one (a `file` part is PDF only).
    public func inlineLimit(for mimeType: String) -> Int? {
        OpenAIConfiguration.inlineImageTypes.contains(mimeType.lowercased()) ? OpenAIConfiguration.maxInlineImageBytes : nil
    }
}

/// What every capability combination shares: the client, request building, error mapping.
final class OpenAICore: Sendable {
    let configuration: OpenAIConfiguration
    let builder: ChatRequestBuilder
    let errors: OpenAIErrorMapping
    /// Every request goes through it: endpoint rules, the key, the status check, error mapping.
    let exchange: ProviderExchange<OpenAIErrorMapping>

    init(configuration: OpenAIConfiguration) {
        self.configuration = configuration
        let client = HTTPClient(
            requestTimeout: configuration.requestTimeout, resourceTimeout: configuration.resourceTimeout,
            maxResponseBytes: configuration.maxResponseBytes, maxConnectionsPerHost: configuration.maxConnectionsPerHost, caFile: configuration.caFile,
            responseHeaders: configuration.responseHeaders)
        builder = ChatRequestBuilder(configuration: configuration, providerName: OpenAIProvider.name)
        chatCompletions = configuration.baseURL.appendingPathComponent("chat/completions")
        errors = OpenAIErrorMapping(configuration: configuration, providerName: OpenAIProvider.name)
        exchange = ProviderExchange(
            client: client, errors: errors, endpointProblem: configuration.endpointProblem,
            credentials: configuration.apiKey.map { ["Authorization": "Bearer \($0.value)"] } ?? [:], requestTimeout: configuration.requestTimeout)
    }

    func endpoint(_ path: String) -> URL { configuration.baseURL.appendingPathComponent(path) }

    /// `endpoint("chat/completions")`, made once: appending a path to a URL was ~3% of the CLI's
    /// CPU per request.
    let chatCompletions: URL

    var serverText: ServerText { errors.text }

    func generate(_ generation: GenerationRequest) async throws(APIError) -> GenerationResponse {
        let body = try builder.body(for: generation, stream: false)
        let response = try await exchange.send(exchange.request(chatCompletions, json: body))
        return try OpenAIResponses.completion(response.body, requestedModel: generation.model, provider: OpenAIProvider.name, text: serverText)
    }

    func stream(_ generation: GenerationRequest) -> AsyncThrowingStream<GenerationChunk, any Error> {
        GenerationStream.run { continuation in try await self.streamInto(continuation, generation) }
    }

    private func streamInto(_ continuation: AsyncThrowingStream<GenerationChunk, any Error>.Continuation, _ generation: GenerationRequest) async throws(APIError) -> GenerationResponse {
        let body = try builder.body(for: generation, stream: true)
        let request = exchange.request(chatCompletions, json: body)
        let url = DisplayURL.endpoint(request.url)
        var assembler = OpenAIResponses.StreamAssembler(requestedModel: generation.model)
        var parser = ServerSentEventParser()
        var done = false
        let serverText = serverText
        do {
            let response = try await exchange.stream(request)
            func take(_ events: [ServerSentEventParser.Event]) throws(APIError) {
                for event in events where !done {
                    if event.data == "[DONE]" {
                        done = true
                        return
                    }
                    let payload: JSONValue
                    do throws(APIError) {
                        payload = try OpenAIResponses.parse(Data(event.data.utf8), provider: OpenAIProvider.name, text: serverText)
                    } catch {
                        // A broken chunk is a broken stream: like a dropped connection, worth another attempt.
                        var broken = error
                        broken.retryable = true
                        broken.code = "stream_malformed"
                        broken.message = "a chunk of the stream from \(url) is broken: \(error.message)"
                        throw broken
                    }
                    if let delta = try assembler.take(payload, provider: OpenAIProvider.name, serverText: serverText) { continuation.yield(.delta(delta)) }
                    for call in assembler.completedToolCalls() { continuation.yield(.toolCall(call)) }
                }
            }
            for try await piece in response.body {
                try take(parser.feed(piece))
                if done { break }
            }
            if !done { try take(parser.finish()) }
        } catch let error as APIError {
            // Usage comes in the stream's last chunk: a stream that breaks after it was billed for it.
            throw error.billed(assembler.usage)
        } catch {
            throw errors.error(transport: error, endpoint: url).billed(assembler.usage)
        }
        guard done else {
            throw APIError(
                .providerError, "the stream from \(url) ended before [DONE]: the connection was closed mid-answer", provider: OpenAIProvider.name,
                retryable: true, code: "stream_truncated"
            ).billed(assembler.usage)
        }
        return assembler.response
    }

    func upload(_ file: FileUpload) async throws(APIError) -> FileReference {
        let url = endpoint("files")
        let multipart: MultipartBody
        do {
            multipart = MultipartBody(
                fields: [("purpose", configuration.uploadPurpose)], fileField: "file", file: try file.open(),
                filename: URL(fileURLWithPath: file.path).lastPathComponent, mimeType: file.mimeType)
        } catch {
            throw APIError(.uploadFailed, error.message, provider: OpenAIProvider.name)
        }
        let response = try await exchange.upload(exchange.request(url), multipart: multipart)
        guard case .object(let object) = try OpenAIResponses.parse(response.body, provider: OpenAIProvider.name, text: serverText), let id = object["id"]?.stringValue else {
            throw APIError(.uploadFailed, "the Files API answered without a file id", provider: OpenAIProvider.name)
        }
        return FileReference(uri: id, mimeType: file.mimeType)
    }
}
