import CommandPipeline
import Dispatch
import Foundation
import Testing

@testable import CommandPipelineHTTP

/// A client whose base URL is `https://` has its TLS context (the system's trust store, ~30 ms
/// to parse) made when it is created, off the caller's thread, so a burst of first requests
/// does not wait for it (`HTTP1Transport.makeTLSContextAhead`); a plain-http client makes none.
@Suite struct TLSContextAheadTests {
    /// Waits (bounded) for the context `client` started making at creation.
    static func madeAhead(_ client: HTTPClient) throws -> Bool {
        let transport = try #require(client.http1, "the own transport is off (COMMANDPIPELINE_HTTP_TRANSPORT)")
        guard transport.tlsContextMade.wait(timeout: .now() + .seconds(120)) == .success else { return false }
        return transport.hasTLSContext
    }

    @Test func anHTTPSClientMakesItsTLSContextWhenCreated() throws {
        #expect(try Self.madeAhead(HTTPClient(origin: URL(string: "https://gateway.example/v1")!)))
    }

    @Test func aPlainHTTPClientMakesNoTLSContext() throws {
        let transport = try #require(HTTPClient(origin: URL(string: "http://127.0.0.1:1/v1")!).http1)
        #expect(transport.tlsContextMade.wait(timeout: .now()) == .timedOut)
        #expect(!transport.hasTLSContext)
    }

    @Test func everyAdapterAndTheWebhookMakeTheirsAhead() throws {
        let key = APIKey("sk-test")
        let url = URL(string: "https://gateway.example/v1")!
        #expect(try Self.madeAhead(OpenAICore(configuration: OpenAIConfiguration(baseURL: url, apiKey: key)).exchange.client))
        #expect(try Self.madeAhead(AnthropicCore(configuration: AnthropicConfiguration(baseURL: url, apiKey: key)).exchange.client))
        #expect(try Self.madeAhead(GeminiCore(configuration: GeminiConfiguration(baseURL: url, apiKey: key)).exchange.client))
        #expect(try Self.madeAhead(WebhookSink(url: url).exchange.client))
    }
}
