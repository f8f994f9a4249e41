extension ModelCatalog {
    /// The date the built-in figures were read.
    public static let builtinDate = "2026-11-22"
    /// The date the cache storage and one-hour write figures were read.
    static let cacheFiguresDate = "2026-12-06"

    /// Common OpenAI, Gemini and Anthropic models, read on `builtinDate`. Each entry's `source`
    /// says where its figures come from and marks the ones that could not be checked against
    /// the provider's own page ("unverified"): prices change; override them with `--models FILE`.
    ///
    /// Input modalities are those of the APIs this package speaks: OpenAI Chat Completions takes
    /// text, images and PDFs (audio only on audio models); Gemini takes text, images, PDFs, audio
    /// and video; Anthropic Messages takes text, images and PDFs.
    public static let builtin = ModelCatalog(openAI + gemini + anthropic, asOf: builtinDate)

    // MARK: OpenAI

    private static let openAIPricing = "https://developers.openai.com/api/docs/pricing"
    private static let openAIModels = "https://platform.openai.com/docs/models"
    /// Automatic prompt caching starts at 1,024 prompt tokens; the Batch API halves every price.
    private static let openAICache = 1024

    static let openAI: [ModelInfo] = [
        ModelInfo(
            name: "gpt-4o", provider: "openai", contextWindow: 128_000, maxOutputTokens: 16_384, inputModalities: [.text, .image, .pdf],
            minCacheTokens: openAICache, prices: ModelPrices(input: 2.50, cachedInput: 1.25, output: 10.00, batchDiscount: 0.5),
            source: "\(openAIPricing) and \(openAIModels)/gpt-4o, read \(builtinDate) through secondary copies of those pages (unverified against the pages themselves)"),
        ModelInfo(
            name: "gpt-4o-mini", provider: "openai", contextWindow: 128_000, maxOutputTokens: 16_384, inputModalities: [.text, .image, .pdf],
            minCacheTokens: openAICache, prices: ModelPrices(input: 0.15, cachedInput: 0.075, output: 0.60, batchDiscount: 0.5),
            source: "\(openAIPricing) and \(openAIModels)/gpt-4o-mini, read \(builtinDate) through secondary copies (unverified)"),
        ModelInfo(
            name: "gpt-4.1", provider: "openai", contextWindow: 1_047_576, maxOutputTokens: 32_768, inputModalities: [.text, .image, .pdf],
            minCacheTokens: openAICache, prices: ModelPrices(input: 2.00, cachedInput: 0.50, output: 8.00, batchDiscount: 0.5),
            source: "\(openAIPricing) and \(openAIModels)/gpt-4.1, read \(builtinDate) through secondary copies (unverified)"),
        ModelInfo(
            name: "gpt-4.1-mini", provider: "openai", contextWindow: 1_047_576, maxOutputTokens: 32_768, inputModalities: [.text, .image, .pdf],
            minCacheTokens: openAICache, prices: ModelPrices(input: 0.40, cachedInput: 0.10, output: 1.60, batchDiscount: 0.5),
            source: "\(openAIPricing) and \(openAIModels)/gpt-4.1-mini, read \(builtinDate) through secondary copies (unverified)"),
        ModelInfo(
            name: "gpt-4.1-nano", provider: "openai", contextWindow: 1_047_576, maxOutputTokens: 32_768, inputModalities: [.text, .image, .pdf],
            minCacheTokens: openAICache, prices: ModelPrices(input: 0.10, cachedInput: 0.025, output: 0.40, batchDiscount: 0.5),
            source: "\(openAIPricing) and \(openAIModels)/gpt-4.1-nano, read \(builtinDate) through secondary copies (unverified)"),
        ModelInfo(
            name: "gpt-5", provider: "openai", contextWindow: 400_000, maxOutputTokens: 128_000, inputModalities: [.text, .image, .pdf],
            minCacheTokens: openAICache, prices: ModelPrices(input: 1.25, cachedInput: 0.125, output: 10.00, batchDiscount: 0.5),
            source: "\(openAIPricing) and \(openAIModels)/gpt-5, read \(builtinDate) through secondary copies (unverified; the cached-input price differs between copies: 0.125 and 0.625)"),
        ModelInfo(
            name: "gpt-5-mini", provider: "openai", contextWindow: 400_000, maxOutputTokens: 128_000, inputModalities: [.text, .image, .pdf],
            minCacheTokens: openAICache, prices: ModelPrices(input: 0.25, cachedInput: 0.025, output: 2.00, batchDiscount: 0.5),
            source: "\(openAIPricing) and \(openAIModels)/gpt-5-mini, read \(builtinDate) through secondary copies (unverified)"),
    ]

    // MARK: Gemini

    private static let geminiPricing = "https://ai.google.dev/gemini-api/docs/pricing"
    private static let geminiModels = "https://ai.google.dev/gemini-api/docs/models"
    private static let geminiCaching = "https://ai.google.dev/gemini-api/docs/caching"
    /// Explicit caches (`cachedContents`) bill the cached tokens once at the input price when
    /// created (Google Cloud's context-cache overview: "billed for the input tokens used to create
    /// the cache at the standard input token price"), then storage per hour of the time to live.
    private static let geminiStorage = "cache storage"

    static let gemini: [ModelInfo] = [
        ModelInfo(
            name: "gemini-2.5-pro", provider: "gemini", contextWindow: 1_048_576, maxOutputTokens: 65_536,
            inputModalities: [.text, .image, .pdf, .audio, .video], minCacheTokens: 4096,
            prices: ModelPrices(input: 1.25, cachedInput: 0.125, output: 10.00, cacheStoragePerHour: 4.50, batchDiscount: 0.5),
            source: "\(geminiPricing) (prompts up to 200k tokens; above it input and output cost more), \(geminiModels), \(geminiCaching); read \(builtinDate) through secondary copies (input and output prices agree across copies; cached price and cache minimum unverified — PROVIDERS.md: minimums differ between doc versions, 1024–4096); \(geminiStorage) $4.50 per million tokens per hour: \(geminiPricing) as quoted in two discuss.ai.google.dev threads, read \(cacheFiguresDate) (not read on the page itself)"),
        ModelInfo(
            name: "gemini-2.5-flash", provider: "gemini", contextWindow: 1_048_576, maxOutputTokens: 65_536,
            inputModalities: [.text, .image, .pdf, .audio, .video], minCacheTokens: 1024,
            prices: ModelPrices(input: 0.30, cachedInput: 0.03, output: 2.50, cacheStoragePerHour: 1.00, batchDiscount: 0.5),
            source: "\(geminiPricing) (text, image and video input; audio input costs more), \(geminiModels), \(geminiCaching); read \(builtinDate) through secondary copies (cached price and cache minimum unverified); \(geminiStorage) $1.00 per million tokens per hour: \(geminiPricing), UNVERIFIED (no copy of the page could be read on \(cacheFiguresDate): check it, and override it with --models)"),
        ModelInfo(
            name: "gemini-2.5-flash-lite", provider: "gemini", contextWindow: 1_048_576, maxOutputTokens: 65_536,
            inputModalities: [.text, .image, .pdf, .audio, .video], minCacheTokens: 1024,
            prices: ModelPrices(input: 0.10, cachedInput: 0.01, output: 0.40, cacheStoragePerHour: 1.00, batchDiscount: 0.5),
            source: "\(geminiPricing), \(geminiModels), \(geminiCaching); read \(builtinDate) through secondary copies (cached price and cache minimum unverified); \(geminiStorage) $1.00 per million tokens per hour: \(geminiPricing), UNVERIFIED (no copy of the page could be read on \(cacheFiguresDate): check it, and override it with --models)"),
    ]

    // MARK: Anthropic

    private static let anthropicPricing = "https://platform.claude.com/docs/en/about-claude/pricing"
    private static let anthropicModels = "https://platform.claude.com/docs/en/about-claude/models/overview"
    private static let anthropicCaching = "https://platform.claude.com/docs/en/build-with-claude/prompt-caching"

    static let anthropic: [ModelInfo] = [
        ModelInfo(
            name: "claude-opus-4-5", provider: "anthropic", contextWindow: 200_000, maxOutputTokens: 64_000, inputModalities: [.text, .image, .pdf],
            minCacheTokens: 4096, prices: ModelPrices(input: 5.00, cachedInput: 0.50, output: 25.00, cacheWrite: 6.25, cacheWriteLong: 10.00, batchDiscount: 0.5),
            source: "prices: \(anthropicPricing) (verified \(builtinDate); one-hour cache writes at 2 × input, \(anthropicCaching), read \(cacheFiguresDate) through secondary copies that agree (unverified against the page itself)); cache minimum: \(anthropicCaching) as quoted in anthropic-sdk-python issue 1194; context and output limits: \(anthropicModels) (unverified)"),
        ModelInfo(
            name: "claude-opus-4-1", provider: "anthropic", contextWindow: 200_000, maxOutputTokens: 32_000, inputModalities: [.text, .image, .pdf],
            minCacheTokens: 1024, prices: ModelPrices(input: 15.00, cachedInput: 1.50, output: 75.00, cacheWrite: 18.75, cacheWriteLong: 30.00, batchDiscount: 0.5),
            source: "prices: \(anthropicPricing) (verified \(builtinDate); one-hour cache writes at 2 × input, \(anthropicCaching), read \(cacheFiguresDate) through secondary copies that agree (unverified against the page itself)); cache minimum: \(anthropicCaching) as quoted in anthropic-sdk-python issue 1194; limits: \(anthropicModels) (unverified)"),
        ModelInfo(
            name: "claude-sonnet-4-5", provider: "anthropic", contextWindow: 200_000, maxOutputTokens: 64_000, inputModalities: [.text, .image, .pdf],
            minCacheTokens: 1024, prices: ModelPrices(input: 3.00, cachedInput: 0.30, output: 15.00, cacheWrite: 3.75, cacheWriteLong: 6.00, batchDiscount: 0.5),
            source: "prices: \(anthropicPricing) (verified \(builtinDate); one-hour cache writes at 2 × input, \(anthropicCaching), read \(cacheFiguresDate) through secondary copies that agree (unverified against the page itself)); cache minimum: \(anthropicCaching) as quoted in anthropic-sdk-python issue 1194; limits: \(anthropicModels) (unverified; a 1M-token context is a beta option)"),
        ModelInfo(
            name: "claude-sonnet-4", provider: "anthropic", contextWindow: 200_000, maxOutputTokens: 64_000, inputModalities: [.text, .image, .pdf],
            minCacheTokens: 1024, prices: ModelPrices(input: 3.00, cachedInput: 0.30, output: 15.00, cacheWrite: 3.75, cacheWriteLong: 6.00, batchDiscount: 0.5),
            source: "prices: \(anthropicPricing) (verified \(builtinDate); one-hour cache writes at 2 × input, \(anthropicCaching), read \(cacheFiguresDate) through secondary copies that agree (unverified against the page itself)); cache minimum: \(anthropicCaching) as quoted in anthropic-sdk-python issue 1194; limits: \(anthropicModels) (unverified)"),
        ModelInfo(
            name: "claude-haiku-4-5", provider: "anthropic", contextWindow: 200_000, maxOutputTokens: 64_000, inputModalities: [.text, .image, .pdf],
            minCacheTokens: 4096, prices: ModelPrices(input: 1.00, cachedInput: 0.10, output: 5.00, cacheWrite: 1.25, cacheWriteLong: 2.00, batchDiscount: 0.5),
            source: "prices: \(anthropicPricing) (verified \(builtinDate); one-hour cache writes at 2 × input, \(anthropicCaching), read \(cacheFiguresDate) through secondary copies that agree (unverified against the page itself)); cache minimum: \(anthropicCaching) as quoted in anthropic-sdk-python issue 1194; limits: \(anthropicModels) (unverified)"),
        ModelInfo(
            name: "claude-3-5-haiku", provider: "anthropic", contextWindow: 200_000, maxOutputTokens: 8_192, inputModalities: [.text, .image, .pdf],
            minCacheTokens: 2048, prices: ModelPrices(input: 0.80, cachedInput: 0.08, output: 4.00, cacheWrite: 1.00, cacheWriteLong: 1.60, batchDiscount: 0.5),
            source: "prices: \(anthropicPricing) (verified \(builtinDate); one-hour cache writes at 2 × input, \(anthropicCaching), read \(cacheFiguresDate) through secondary copies that agree (unverified against the page itself)); cache minimum: \(anthropicCaching) as quoted in anthropic-sdk-python issue 1194; limits: \(anthropicModels) (unverified)"),
    ]
}
