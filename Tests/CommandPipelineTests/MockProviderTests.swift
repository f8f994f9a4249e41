import CommandPipeline
import Foundation
import Testing

@Suite struct MockProviderTests {
    @Test func echoesTheLastTextPartAndCountsTokens() async throws {
        let mock = MockProvider.make()
        let request = GenerationRequest(model: "m", parts: [.text("first"), .inline(InlineData(mimeType: "image/png", data: Data([1]))), .text("last one")])
        let response = try await mock.generate(request)
        #expect(response.text == "echo: last one")
        // ⌈5/4⌉ + 258 + ⌈8/4⌉ = 2 + 258 + 2
        #expect(response.usage.promptTokens == 262)
        // ⌈14/4⌉ = 4
        #expect(response.usage.completionTokens == 4)
        #expect(response.usage.totalTokens == 266)
        #expect(response.finishReason == "stop")
    }

    @Test func failingModelsFailRetryablyAsUnavailable() async throws {
        let mock = MockProvider.make(MockConfiguration(failingModels: ["down"]))
        do {
            _ = try await mock.generate(GenerationRequest(model: "down", parts: [.text("x")]))
            Issue.record("expected a failure")
        } catch let error as APIError {
            #expect(error.retryable)
            #expect(error.code == "unavailable")
            #expect(error.provider == "mock")
        }
    }

    @Test func uploadsAreContentAddressed() async throws {
        let dir = try temporaryDirectory(files: ["a.txt": "abc"])
        let uploader = try #require(MockProvider.make().uploads)
        let ref = try await uploader.upload(FileUpload(path: dir.appendingPathComponent("a.txt").path, mimeType: "text/plain"))
        #expect(ref.uri == "mock://files/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func streamingEndsWithTheSameResponseAsGenerate() async throws {
        let mock = MockProvider.make()
        let streaming = try #require(mock.streaming)
        let request = GenerationRequest(model: "m", parts: [.text("one two three")])
        var deltas = ""
        var final: GenerationResponse?
        for try await chunk in streaming.stream(request) {
            switch chunk {
            case .delta(let d): deltas += d
            case .toolCall: break
            case .completed(let r): final = r
            }
        }
        let direct = try await mock.generate(request)
        #expect(final == direct)
        #expect(deltas == direct.text)
    }

    @Test func tokenCountingAgreesWithGenerate() async throws {
        let mock = MockProvider.make(MockConfiguration(failingModels: ["down"]))
        let request = GenerationRequest(model: "m", parts: [.text("12345678")])
        #expect(try await (mock as! any TokenCountingCapability).countTokens(request) == 2)
    }

    @Test func registryMakesProvidersByName() throws {
        let registry = ProviderRegistry.standard
        #expect(try registry.make("mock").get().providerName == "mock")
        #expect(registry.make("nope").failure?.message.contains("unknown provider 'nope'") == true)
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(Array(repeating: UInt8(ascii: "a"), count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}
