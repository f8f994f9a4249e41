import CommandPipeline
import Foundation

/// The benchmark runner: `swift run -c release PipelineBench [--json] [--scenario NAME]`.
@main
struct PipelineBench {
    static let scenarios = ["overhead", "parts", "fanout", "uploads", "cache", "faults", "routing", "cli"]

    static func main() async {
        var json = false
        var selected: [String] = []
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--json": json = true
            case "--scenario":
                guard let name = arguments.next(), scenarios.contains(name) else {
                    FileHandle.standardError.write(Data("Error: --scenario needs one of: \(scenarios.joined(separator: ", "))\n".utf8))
                    exit(2)
                }
                selected.append(name)
            case "--help", "-h":
                print("Usage: PipelineBench [--json] [--scenario NAME]...\nScenarios: \(scenarios.joined(separator: ", "))")
                return
            default:
                FileHandle.standardError.write(Data("Error: unknown argument '\(argument)'\nUsage: PipelineBench [--json] [--scenario NAME]...\n".utf8))
                exit(2)
            }
        }
        let run = selected.isEmpty ? scenarios : selected
        // Measure off the main actor: every await from main-actor code would hop executors.
        let figures = await Task.detached { await measure(run) }.value
        if json {
            let objects: [JSONValue] = figures.map { f in
                ["scenario": .string(f.scenario), "metric": .string(f.metric), "value": .double(f.value), "unit": .string(f.unit),
                 "target": f.target.map(JSONValue.string) ?? .null, "met": f.met.map(JSONValue.bool) ?? .null]
            }
            print(JSONSerializer.serialize(.array(objects)))
        } else {
            printTable(figures)
        }
    }

    static func measure(_ names: [String]) async -> [Figure] {
        var figures: [Figure] = []
        for name in names {
            switch name {
            case "overhead": figures += await overheadScenario(commands: 100_000)
            case "parts": figures += await partsScenario()
            case "fanout": figures += await fanoutScenario(calls: 10_000, latencyMs: 20, concurrency: 256)
            case "uploads": figures += await uploadsScenario(files: 16, latencyMs: 50)
            case "cache": figures += await cacheScenario(commands: 1000)
            case "faults": figures += await faultsScenario(commands: Int(ProcessInfo.processInfo.environment["FAULTS_N"] ?? "") ?? 100_000)
            case "routing": figures += await routingScenario(commands: Int(ProcessInfo.processInfo.environment["ROUTING_N"] ?? "") ?? 100_000)
            case "cli": figures += cliScenario(commands: 1_000_000)
            default: break
            }
        }
        return figures
    }

    static func printTable(_ figures: [Figure]) {
        let header = ["scenario", "metric", "value", "unit", "target", "met"]
        let rows = figures.map { f in
            [f.scenario, f.metric, format(f.value), f.unit, f.target ?? "-", f.met.map { $0 ? "yes" : "NO" } ?? "-"]
        }
        let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        print(line(header))
        print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
        for row in rows { print(line(row)) }
    }
}
