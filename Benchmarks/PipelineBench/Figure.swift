/// One measured figure, with the target it is compared against.
struct Figure: Sendable {
    enum Goal: Sendable {
        case atMost(Double)
        case atLeast(Double)
        case exactly(Double)
        case none
    }

    var scenario: String
    var metric: String
    var value: Double
    var unit: String
    var goal: Goal

    var target: String? {
        switch goal {
        case .atMost(let t): "<= \(format(t))"
        case .atLeast(let t): ">= \(format(t))"
        case .exactly(let t): "== \(format(t))"
        case .none: nil
        }
    }

    var met: Bool? {
        switch goal {
        case .atMost(let t): value <= t
        case .atLeast(let t): value >= t
        case .exactly(let t): value == t
        case .none: nil
        }
    }
}

func format(_ value: Double) -> String {
    if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
    if abs(value) >= 100 { return String(format: "%.1f", value) }
    return String(format: "%.3f", value)
}
