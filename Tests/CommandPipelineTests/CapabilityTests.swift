import CommandPipeline
import CommandPipelineBatch
import Testing

@Suite struct CapabilityTests {
    @Test func fullMockHasEveryCapability() {
        let mock = MockProvider.make()
        #expect(mock.uploads != nil)
        #expect(mock.caching != nil)
        #expect(mock.streaming != nil)
        #expect(mock.tokenCounting != nil)
        #expect(mock.batch != nil)
        #expect(ProviderCapability.probe(mock) == Set(ProviderCapability.allCases))
    }

    @Test func generationOnlyProviderLacksTheOptionalOnes() {
        let provider = RecordingProvider(clock: ManualClock())
        #expect(ProviderCapability.probe(provider) == [.generation])
        #expect(provider.uploads == nil && provider.caching == nil && provider.streaming == nil)
    }

    /// Every one of the 32 subsets of optional capabilities probes as exactly that subset,
    /// and the accessors the engine uses agree.
    @Test(arguments: 0..<32) func mockSubsetsReallyLackTheirConformances(mask: Int) {
        let optional: [ProviderCapability] = [.uploads, .caching, .streaming, .tokenCounting, .batch]
        var wanted: Set<ProviderCapability> = [.generation]
        for (bit, capability) in optional.enumerated() where mask & (1 << bit) != 0 { wanted.insert(capability) }
        let mock = MockProvider.make(MockConfiguration(capabilities: wanted))
        #expect(ProviderCapability.probe(mock) == wanted)
        #expect((mock.uploads != nil) == wanted.contains(.uploads))
        #expect((mock.batch != nil) == wanted.contains(.batch))
    }

    @Test func capabilityListsParseAndRejectUnknownNames() throws {
        #expect(try ProviderCapability.parseList("generation,uploads").get() == [.generation, .uploads])
        let error = ProviderCapability.parseList("generation,telepathy").failure
        #expect(error?.message.contains("telepathy") == true)
    }
}
