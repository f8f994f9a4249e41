/// What calls cost, in US dollars, from their usage and the catalog's prices.
public struct Cost: Sendable, Hashable {
    /// Input tokens not read from (nor written to) a cache, at the input price.
    public var inputUSD: Double
    /// Input tokens read from a cache, at the cached-input price.
    public var cachedInputUSD: Double
    /// Input tokens written to a cache, at the cache-write price (the input price where none is set).
    public var cacheWriteUSD: Double
    public var outputUSD: Double
    /// Calls left out of the sum because their model has no prices in the catalog.
    public var unpricedCalls: Int

    public init(inputUSD: Double = 0, cachedInputUSD: Double = 0, cacheWriteUSD: Double = 0, outputUSD: Double = 0, unpricedCalls: Int = 0) {
        self.inputUSD = inputUSD
        self.cachedInputUSD = cachedInputUSD
        self.cacheWriteUSD = cacheWriteUSD
        self.outputUSD = outputUSD
        self.unpricedCalls = unpricedCalls
    }

    public static let zero = Cost()

    public var totalUSD: Double { inputUSD + cachedInputUSD + cacheWriteUSD + outputUSD }

    public static func + (lhs: Cost, rhs: Cost) -> Cost {
        Cost(
            inputUSD: lhs.inputUSD + rhs.inputUSD, cachedInputUSD: lhs.cachedInputUSD + rhs.cachedInputUSD,
            cacheWriteUSD: lhs.cacheWriteUSD + rhs.cacheWriteUSD, outputUSD: lhs.outputUSD + rhs.outputUSD,
            unpricedCalls: lhs.unpricedCalls.addingSaturating(rhs.unpricedCalls))
    }

    /// The cost of one call's `usage` at `prices`; `batch` applies the batch discount to every part.
    /// (`Usage.promptTokens` includes cached and cache-written tokens; each is billed once, at its own price.)
    public static func of(_ usage: Usage, prices: ModelPrices, batch: Bool = false) -> Cost {
        let cached = min(usage.cachedTokens, usage.promptTokens)
        let written = min(usage.cacheCreationTokens, usage.promptTokens - cached)
        let plain = usage.promptTokens - cached - written
        let factor = (batch ? 1 - prices.batchDiscount : 1) / 1_000_000
        return Cost(
            inputUSD: Double(plain) * prices.input * factor, cachedInputUSD: Double(cached) * prices.cachedInput * factor,
            cacheWriteUSD: Double(written) * (prices.cacheWrite ?? prices.input) * factor,
            outputUSD: Double(usage.completionTokens) * prices.output * factor)
    }

    /// The cost of a response, by the model that produced it; nil when the catalog has no prices for it.
    public static func of(_ response: CallResponse, catalog: ModelCatalog, batch: Bool = false) -> Cost? {
        guard let prices = catalog.info(for: response.model)?.prices else { return nil }
        return of(response.usage, prices: prices, batch: batch)
    }

    /// The cost of a command's responses (primary calls, or the fallback's when it answered, and
    /// the partial responses of a failed command); nil when none of them is priced.
    public static func of(_ responses: [CallResponse], catalog: ModelCatalog, batch: Bool = false) -> Cost? {
        var total: Cost?
        var unpriced = 0
        for response in responses {
            if let cost = of(response, catalog: catalog, batch: batch) { total = (total ?? .zero) + cost } else { unpriced += 1 }
        }
        total?.unpricedCalls = unpriced
        return total
    }

    /// A rough upper estimate of what `command` will cost before it runs, for budgets: per call
    /// (not the fallback), the input by `TokenHeuristic` at the input price, and as output
    /// `config.max_tokens`, else what the command's `token_estimate.expected_tokens` leaves after
    /// the input, else 1,024 tokens, at the output price. Calls on unpriced models count 0.
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
}
