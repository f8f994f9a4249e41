import Foundation

/// The `pattern` subset (`Design/structured-output.md`, "Patterns"): `NSRegularExpression`
/// backtracks without a time limit, so the constructs that make backtracking exponential are
/// refused when the schema is checked: backreferences, lookahead and lookbehind, and a repeating
/// quantifier (`*`, `+`, `{n,m}` with m above 1) on a group that itself holds a quantifier or an
/// alternation (`(a+)+`, `(a|aa)*`, `(.*)*`, `((ab)+)+`). `?` on such a group is allowed
/// (`(-\d+)?`): it at most doubles the work. The x (extended) flag is refused too (its comments
/// could hide a group from this reading).
enum SchemaPattern {
    /// Why `pattern` is outside the subset, or nil when it is inside (it may still not compile).
    static func problem(_ pattern: String) -> String? {
        let c = Array(pattern.unicodeScalars)
        var i = 0
        // Per open group: whether it holds a quantifier or an alternation (at any depth).
        var groups: [Bool] = []
        func markHolds() { if !groups.isEmpty { groups[groups.count - 1] = true } }
        func skip(to close: Unicode.Scalar, from start: Int) -> Int {
            var j = start
            while j < c.count, c[j] != close { j += 1 }
            return j + 1
        }
        while i < c.count {
            // Whether the atom just read is a group holding repetition (nil: not a group).
            var groupHolds: Bool?
            switch c[i] {
            case "\\":
                guard i + 1 < c.count else { return nil }
                let next = c[i + 1]
                if ("1"..."9").contains(next) || next == "k" {
                    return "pattern uses a backreference (\\1, \\k<name>), which is not supported: matching one can take exponential time"
                }
                if next == "Q" {
                    // Quoted up to \E.
                    var j = i + 2
                    while j + 1 < c.count, !(c[j] == "\\" && c[j + 1] == "E") { j += 1 }
                    i = j + 2
                } else {
                    i += 2
                    if i < c.count, c[i] == "{", ["p", "P", "x", "N"].contains(next) { i = skip(to: "}", from: i) }
                }
            case "[":
                // A set, possibly with nested sets ([a-z&&[^b]]); `]` first in a set is literal.
                var depth = 0
                var j = i
                while j < c.count {
                    if c[j] == "\\" {
                        j += 2
                    } else if c[j] == "[" {
                        depth += 1
                        j += 1
                        if j < c.count, c[j] == "^" { j += 1 }
                        if j < c.count, c[j] == "]" { j += 1 }
                    } else if c[j] == "]" {
                        depth -= 1
                        j += 1
                        if depth == 0 { break }
                    } else {
                        j += 1
                    }
                }
                i = j
            case "(":
                if i + 2 < c.count, c[i + 1] == "?" {
                    let kind = c[i + 2]
                    if kind == "=" || kind == "!" || (kind == "<" && i + 3 < c.count && (c[i + 3] == "=" || c[i + 3] == "!")) {
                        return "pattern uses a lookahead or lookbehind ((?=, (?!, (?<=, (?<!), which is not supported"
                    }
                    // Flags ((?i), (?x-s:…)): the x flag makes white space and `#…` comments
                    // invisible, which this reading does not follow, so it is refused.
                    var j = i + 2
                    var flags = ""
                    while j < c.count, c[j].properties.isAlphabetic || c[j] == "-" {
                        flags.unicodeScalars.append(c[j])
                        j += 1
                    }
                    if flags.contains("x"), j < c.count, c[j] == ")" || c[j] == ":" {
                        return "pattern turns on the x (extended) flag, which is not supported: write the pattern without white space and comments"
                    }
                    if kind == "#" {
                        i = skip(to: ")", from: i)
                        continue
                    }
                }
                groups.append(false)
                i += 1
                continue
            case ")":
                i += 1
                guard let holds = groups.popLast() else { continue }
                if holds { markHolds() }
                groupHolds = holds
            case "|":
                markHolds()
                i += 1
                continue
            default:
                i += 1
            }
            // A quantifier after the atom.
            guard i < c.count else { break }
            var repeats = false
            switch c[i] {
            case "*", "+":
                repeats = true
                i += 1
            case "?":
                i += 1
            case "{":
                var j = i + 1
                var low = "", high: String?
                while j < c.count, ("0"..."9").contains(c[j]) { low.unicodeScalars.append(c[j]); j += 1 }
                if j < c.count, c[j] == "," {
                    high = ""
                    j += 1
                    while j < c.count, ("0"..."9").contains(c[j]) { high!.unicodeScalars.append(c[j]); j += 1 }
                }
                guard !low.isEmpty, j < c.count, c[j] == "}" else { continue }  // a literal brace
                let most = high.map { $0.isEmpty ? Int.max : Int($0) ?? Int.max } ?? (Int(low) ?? Int.max)
                repeats = most > 1
                i = j + 1
            default:
                continue
            }
            if repeats, groupHolds == true {
                return "pattern repeats a group that itself holds a quantifier or an alternation (such as (a+)+, (a|aa)*, (.*)*, ((ab)+)+), "
                    + "which can take exponential time to match: rewrite it without the nested repetition"
            }
            markHolds()
            // A lazy or possessive suffix.
            if i < c.count, c[i] == "?" || c[i] == "+" { i += 1 }
        }
        return nil
    }
}

/// Compiled patterns, shared by the copies of one schema; never changed after it is made.
final class CompiledPatterns: @unchecked Sendable {
    let regexes: [String: NSRegularExpression]
    init(_ regexes: [String: NSRegularExpression]) { self.regexes = regexes }
    static let none = CompiledPatterns([:])
}
