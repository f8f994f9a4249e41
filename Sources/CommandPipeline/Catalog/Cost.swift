/// What calls cost, in US dollars, from their usage and the catalog's prices.
public struct Cost: Sendable, Hashable {
    /// Input tokens not read from (nor written to) a cache, at the input price.
    public var inputUSD: Double
    /// Input tokens read from a cache, at the cached-input price.
    public var cachedInputUSD: Double
    /// Input tokens written to a cache, at the cache-write price (the input price where none is set).
    public var cacheWriteUSD: Double
    public var outputUSD: Double
    /// Keeping a stored cache for its time to live, at the storage price.
    public var cacheStorageUSD: Double
    /// Calls left out of the sum because their model has no prices in the catalog.
    public var unpricedCalls: Int
    /// Calls on priced models whose provider did not report usage (`Usage.unreported`): left
    /// out of the sum, which is then a lower bound (`unreported_calls` on the wire, `Design/decisions/0013-unknown-usage.md`).
    public var unreportedCalls: Int = 0
    /// Which request each part of a command's cost came from (`CostUnit`); empty for the cost
    /// of one response.
    package var parts: [CostPart]

    package init(
        inputUSD: Double = 0, cachedInputUSD: Double = 0, cacheWriteUSD: Double = 0, outputUSD: Double = 0, cacheStorageUSD: Double = 0,
        unpricedCalls: Int = 0, parts: [CostPart] = []
    ) {
        self.inputUSD = inputUSD
        self.cachedInputUSD = cachedInputUSD
        self.cacheWriteUSD = cacheWriteUSD
        self.outputUSD = outputUSD
        self.cacheStorageUSD = cacheStorageUSD
        self.unpricedCalls = unpricedCalls
        self.parts = parts
    }

    public static let zero = Cost()

    public var totalUSD: Double { inputUSD + cachedInputUSD + cacheWriteUSD + outputUSD + cacheStorageUSD }

    public static func + (lhs: Cost, rhs: Cost) -> Cost {
        var sum = Cost(
            inputUSD: lhs.inputUSD + rhs.inputUSD, cachedInputUSD: lhs.cachedInputUSD + rhs.cachedInputUSD,
            cacheWriteUSD: lhs.cacheWriteUSD + rhs.cacheWriteUSD, outputUSD: lhs.outputUSD + rhs.outputUSD,
            cacheStorageUSD: lhs.cacheStorageUSD + rhs.cacheStorageUSD,
            unpricedCalls: lhs.unpricedCalls.addingSaturating(rhs.unpricedCalls), parts: lhs.parts + rhs.parts)
        sum.unreportedCalls = lhs.unreportedCalls.addingSaturating(rhs.unreportedCalls)
        return sum
    }

    /// The cost of one request's `usage` at `prices`; `batch` applies the batch discount to every part.
    /// (`Usage.promptTokens` includes cached and cache-written tokens; each is billed once, at its
    /// own price; written tokens of a one-hour cache at `cacheWriteLong`.)
    public static func of(_ usage: Usage, prices: ModelPrices, batch: Bool = false) -> Cost {
        let cached = min(usage.cachedTokens, usage.promptTokens)
        let written = min(usage.cacheCreationTokens, usage.promptTokens - cached)
        let long = min(usage.cacheCreationLongTokens, written)
        let plain = usage.promptTokens - cached - written
        let factor = (batch ? 1 - prices.batchDiscount : 1) / 1_000_000
        let write = prices.cacheWrite ?? prices.input
        return Cost(
            inputUSD: Double(plain) * prices.input * factor, cachedInputUSD: Double(cached) * prices.cachedInput * factor,
            cacheWriteUSD: (Double(written - long) * write + Double(long) * (prices.cacheWriteLong ?? write)) * factor,
            outputUSD: Double(usage.completionTokens) * prices.output * factor)
    }

    /// Keeping `tokens` in a stored cache for `seconds`, at `prices.cacheStoragePerHour` (zero
    /// where the model has no storage price). Never discounted.
    public static func storage(tokens: Int, seconds: Int, prices: ModelPrices) -> Cost {
        guard let perHour = prices.cacheStoragePerHour, tokens > 0, seconds > 0 else { return .zero }
        return Cost(cacheStorageUSD: Double(tokens) * perHour / 1_000_000 * Double(seconds) / 3600)
    }

    /// The cost of a response, by the model that produced it; nil when the catalog has no prices
    /// for it, or when its provider did not report the usage (the cost is unknown, not 0).
    public static func of(_ response: CallResponse, catalog: ModelCatalog, batch: Bool = false) -> Cost? {
        guard response.usage.isReported, let prices = catalog.info(for: response.model)?.prices else { return nil }
        return of(response.usage, prices: prices, batch: batch)
    }

    /// The cost of a command's responses (primary calls, or the fallback's when it answered, and
    /// the partial responses of a failed command); nil when none of them is priced. A response on
    /// a priced model whose usage was not reported counts in `unreportedCalls`, not in the sum.
    public static func of(_ responses: [CallResponse], catalog: ModelCatalog, batch: Bool = false) -> Cost? {
        var total: Cost?
        var unpriced = 0, unreported = 0
        for response in responses {
            if let cost = of(response, catalog: catalog, batch: batch) {
                total = (total ?? .zero) + cost
            } else if !response.usage.isReported && catalog.info(for: response.model)?.prices != nil {
                total = total ?? .zero
                unreported += 1
            } else {
                unpriced += 1
            }
        }
        total?.unpricedCalls = unpriced
        total?.unreportedCalls = unreported
        return total
    }

    /// A rough upper estimate of what `command` will cost before it runs, for budgets: per call
    /// (not the fallback), the input by `TokenHeuristic` at the input price, and as output
    /// `config.max_tokens`, else what the command's `token_estimate.expected_tokens` leaves after
    /// the input, else 1,024 tokens, at the output price. Calls on unpriced models count 0.
    /// (A cache the command may create is `cacheEstimate`'s.)
    public static func estimate(_ command: PlannedCommand, catalog: ModelCatalog) -> Double {
        var total = 0.0
        let calls = command.plan.calls
        for call in calls {
            guard let prices = catalog.info(for: call.model)?.prices else { continue }
            let input = TokenHeuristic.tokens(of: command.plan.sharedParts + call.parts)
                .addingSaturating(TokenHeuristic.tokens(of: call.config.systemInstruction ?? ""))
            let output: Int
            if let asked = call.config.maxTokens {
                output = asked
            } else if let expected = command.tokenEstimate?.expectedTokens {
                output = max(0, expected / max(1, calls.count) - input)
            } else {
                output = 1024
            }
            total += (Double(input) * prices.input + Double(output) * prices.output) / 1_000_000
        }
        return total
    }

    /// What the budget holds for a command whose server did not report the usage of some of its
    /// `responses` (`CostLedger.settle(reserved:cost:held:)`): a count of what was sent and what
    /// came back, by `TokenHeuristic` (bytes ÷ 4: the call's shared parts, parts and system
    /// instruction as input; the answer's text and its tool calls' arguments as output), at the
    /// answering model's catalog prices, for each response on a priced model whose usage is
    /// unknown. 0 when there is none. The caller holds at least the command's estimate, so a long
    /// answer raises the held amount and a short one never lowers it (ADR 0013).
    package static func unreportedHeuristic(_ responses: [CallResponse], command: PlannedCommand, catalog: ModelCatalog) -> Double {
        var total = 0.0
        for response in responses where !response.usage.isReported {
            guard let prices = catalog.info(for: response.model)?.prices else { continue }
            let plan = command.plan
            let call = plan.calls.indices.contains(response.callIndex) && plan.calls[response.callIndex].model == response.model
                ? plan.calls[response.callIndex] : plan.fallbackCall ?? plan.calls.first
            var input = 0
            if let call {
                input = TokenHeuristic.tokens(of: plan.sharedParts + call.parts)
                    .addingSaturating(TokenHeuristic.tokens(of: call.config.systemInstruction ?? ""))
            }
            var output = TokenHeuristic.tokens(of: response.text)
            for tool in response.toolCalls {
                let arguments = tool.unparsedArguments ?? JSONSerializer.serialize(tool.arguments)
                output = output.addingSaturating(TokenHeuristic.tokens(of: tool.name)).addingSaturating(TokenHeuristic.tokens(of: arguments))
            }
            total += (Double(input) * prices.input + Double(output) * prices.output) / 1_000_000
        }
        return total.isFinite ? max(0, total) : 0
    }

    /// A rough upper estimate of creating and keeping the cache `command`'s plan asks for: the
    /// shared parts and the first call's system instruction by `TokenHeuristic`, written at the
    /// cache-write price (the one-hour price for a time to live above five minutes, where the
    /// model has one), one output token (a prefix cache's warm-up), and the storage for the
    /// whole time to live. 0 without a cache plan, for an unpriced model, or when the plan
    /// runs uncached (`Preflight.uncachedReason`).
    public static func cacheEstimate(_ command: PlannedCommand, catalog: ModelCatalog) -> Double {
        guard let plan = command.plan.cache, let first = command.plan.calls.first, !command.plan.sharedParts.isEmpty,
            let prices = catalog.info(for: first.model)?.prices, Preflight.uncachedReason(command, catalog: catalog) == nil
        else { return 0 }
        let tokens = TokenHeuristic.tokens(of: command.plan.sharedParts).addingSaturating(TokenHeuristic.tokens(of: first.config.systemInstruction ?? ""))
        let write = plan.ttlSeconds > 300 ? (prices.cacheWriteLong ?? prices.cacheWrite ?? prices.input) : (prices.cacheWrite ?? prices.input)
        let creation = (Double(tokens) * write + prices.output) / 1_000_000
        return creation + storage(tokens: tokens, seconds: plan.ttlSeconds, prices: prices).totalUSD
    }
}

/// One request's share of a command's cost (`Cost.parts`): which request it was, the model
/// that served it, and what it cost.
package struct CostPart: Sendable, Hashable {
    package enum Request: String, Sendable, Hashable {
        /// A call's answer: `responses[callIndex]` (the fallback's call too).
        case call
        /// An attempt that failed or broke off after its answer reported usage: billed by the
        /// provider though the call did not end with it.
        case failedAttempt = "failed_attempt"
        /// The one-token request that wrote a prefix cache (Anthropic).
        case cacheWarmUp = "cache_warm_up"
        /// The request that created a stored cache (Gemini `cachedContents.create`).
        case cacheCreation = "cache_creation"
        /// Keeping the stored cache this command created for its time to live.
        case cacheStorage = "cache_storage"
    }

    public var request: Request
    public var model: String
    /// The call, for `call` and `failed_attempt`.
    public var callIndex: Int?
    /// The attempt (1-based), for `failed_attempt`.
    public var attempt: Int?
    public var usd: Double

    public init(request: Request, model: String, callIndex: Int? = nil, attempt: Int? = nil, usd: Double) {
        self.request = request
        self.model = model
        self.callIndex = callIndex
        self.attempt = attempt
        self.usd = usd
    }
}
