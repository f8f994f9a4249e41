/// One unit of a chain: it does its work around `next`, the rest of the chain. A unit may
/// call `next` once (a timeout, a sink), several times (retry, fallback) or not at all
/// (validation rejecting a command).
///
/// The engine has two chains: around a command (`CommandRun` → `CommandOutcome`: deadline,
/// validation, fallback, telemetry sinks, then the stage loop) and around each call of the
/// generate stage (`CallInput` → result: cache bypass, retry, rate limits, per-call timeout,
/// then the provider).
public protocol ChainUnit<Input, Output>: Sendable {
    associatedtype Input: Sendable
    associatedtype Output: Sendable
    func handle(_ input: Input, next: Next<Input, Output>) async -> Output
}

/// The rest of a chain, as seen from one unit.
public struct Next<Input: Sendable, Output: Sendable>: Sendable {
    let body: @Sendable (Input) async -> Output

    public init(_ body: @escaping @Sendable (Input) async -> Output) { self.body = body }

    public func callAsFunction(_ input: Input) async -> Output { await body(input) }
}

/// Units folded around a terminal, first unit outermost. This is the one place any chain
/// is assembled.
public struct Chain<Input: Sendable, Output: Sendable>: Sendable {
    public let units: [any ChainUnit<Input, Output>]
    private let entry: Next<Input, Output>

    public init(_ units: [any ChainUnit<Input, Output>], terminal: @escaping @Sendable (Input) async -> Output) {
        self.units = units
        var next = Next(terminal)
        for unit in units.reversed() {
            let inner = next
            next = Next { input in await unit.handle(input, next: inner) }
        }
        entry = next
    }

    public func callAsFunction(_ input: Input) async -> Output { await entry(input) }
}
