/// One unit of a chain: it does its work around `next`, the rest of the chain. A unit may
/// call `next` once (a timeout, a sink), several times (retry, fallback) or not at all
/// (validation rejecting a command).
///
/// The engine has two chains: around a command (`CommandRun` → `CommandOutcome`: deadline,
/// validation, fallback, telemetry sinks, then the stage loop) and around each call of the
/// generate stage (`CallInput` → result: cache bypass, retry, rate limits, per-call timeout,
/// then the provider).
package protocol ChainUnit<Input, Output>: Sendable {
    associatedtype Input: Sendable
    associatedtype Output: Sendable
    func handle(_ input: Input, next: Next<Input, Output>) async -> Output
    /// Whether the unit has anything to do for `input`; when not, the chain goes straight on
    /// to the next unit (by default it always has).
    func applies(to input: Input) -> Bool
}

extension ChainUnit {
    public func applies(to input: Input) -> Bool { true }
}

/// The rest of a chain, as seen from one unit.
package struct Next<Input: Sendable, Output: Sendable>: Sendable {
    let units: [any ChainUnit<Input, Output>]
    let index: Int
    let terminal: @Sendable (Input) async -> Output

    /// Runs the rest of the chain. (Inlined into each unit's call site, so a unit costs one
    /// async frame, not two: the chain runs once per command and once per call.)
    @inline(__always)
    public func callAsFunction(_ input: Input) async -> Output {
        var index = self.index
        while index < units.count {
            let unit = units[index]
            index += 1
            if unit.applies(to: input) { return await unit.handle(input, next: Next(units: units, index: index, terminal: terminal)) }
        }
        return await terminal(input)
    }
}

/// Units folded around a terminal, first unit outermost. This is the one place any chain
/// is assembled: each unit's `next` is the rest of the list, then the terminal.
package struct Chain<Input: Sendable, Output: Sendable>: Sendable {
    public let units: [any ChainUnit<Input, Output>]
    private let entry: Next<Input, Output>

    public init(_ units: [any ChainUnit<Input, Output>], terminal: @escaping @Sendable (Input) async -> Output) {
        self.units = units
        entry = Next(units: units, index: 0, terminal: terminal)
    }

    @inline(__always)
    public func callAsFunction(_ input: Input) async -> Output { await entry(input) }
}
