/// Ordered output: results that finished before an earlier command wait here until it is their
/// turn, and the input credits of each (`InputReader.weight`) are given back either at once —
/// while the waiting results fit in `limit` bytes — or when its line is written.
///
/// Giving credits back when a command *ends* keeps a command that hangs (until its timeout)
/// from stopping the reading of input: before, the read window filled behind it and every slot
/// sat idle. The byte limit keeps memory bounded whatever hangs.
struct ReorderBuffer<Result> {
    private var waiting: [Int: (result: Result, cost: Int, heldCredits: Int)] = [:]
    /// The next index to write.
    private(set) var next = 0
    /// Bytes of the results waiting (each counted at least `minimumCost`).
    private(set) var bytes = 0
    let limit: Int

    /// A waiting result counts at least this (a skipped command has no line but takes an entry).
    static var minimumCost: Int { 128 }

    init(limit: Int) { self.limit = limit }

    /// Adds the result of command `index` (`size` bytes, `credits` input credits), hands what
    /// may be written now to `write`, in order, and returns the credits that come back now.
    mutating func add(_ result: Result, index: Int, size: Int, credits: Int, write: (Result) -> Void) -> Int {
        var released = 0
        if index == next {
            // In turn (most results): written at once, never stored.
            write(result)
            next += 1
            released += credits
        } else {
            released += hold(result, index: index, size: size, credits: credits)
        }
        while !waiting.isEmpty, let head = waiting.removeValue(forKey: next) {
            write(head.result)
            next += 1
            released += head.heldCredits
            bytes -= head.cost
        }
        return released
    }

    /// Stores a result that is not in turn; returns its credits when they come back now (the
    /// waiting results, this one included, fit in `limit`), else 0 (held until it is written).
    private mutating func hold(_ result: Result, index: Int, size: Int, credits: Int) -> Int {
        let cost = max(Self.minimumCost, size)
        let fits = bytes.addingSaturating(cost) <= limit
        waiting[index] = (result, cost, fits ? 0 : credits)
        bytes = bytes.addingSaturating(cost)
        return fits ? credits : 0
    }

    /// Whatever still waits (after an interrupt: behind commands that never ran), in order.
    mutating func drain() -> [Result] {
        let rest = waiting.keys.sorted().map { waiting[$0]!.result }
        waiting = [:]
        bytes = 0
        return rest
    }

    var isEmpty: Bool { waiting.isEmpty }
}
