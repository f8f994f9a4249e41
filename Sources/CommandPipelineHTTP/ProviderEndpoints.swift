import CommandPipeline

// Where each adapter's requests go, for the response cache's key (`ProviderEndpoint`): two
// servers of one API (`--base-url`) may answer differently. Without user information: the key
// is stored, a password in a URL must not be.

extension OpenAIAdapter: ProviderEndpoint {
    public var endpoint: String { DisplayURL.string(core.configuration.baseURL) }
}

extension AnthropicAdapter: ProviderEndpoint {
    public var endpoint: String { DisplayURL.string(core.configuration.baseURL) }
}

extension GeminiAdapter: ProviderEndpoint {
    public var endpoint: String { DisplayURL.string(core.configuration.baseURL) }
}
