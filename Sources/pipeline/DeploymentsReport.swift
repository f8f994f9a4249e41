import CommandPipeline
import CommandPipelineHTTP
import Foundation

/// `--deployments FILE`: the router made from the file (one adapter per deployment, through the
/// same registry and options as `--provider`), and its rows in `--stats` / `--stats-json`.
enum DeploymentsReport {
    /// The router of `configuration`, the file at `path` (loaded once, by `Pipeline`: its key
    /// variables are also withheld from the hooks).
    static func router(_ configuration: RouterConfiguration, path: String, options: RunOptions) -> Result<Router, UsageError> {
        let providerOptions = ProviderOptions(
            allowInsecureHTTP: options.allowInsecureHTTP, maxConnectionsPerHost: Pipeline.connections(options), caFile: options.caFile,
            mock: Pipeline.mockConfiguration(options))
        do throws(ConfigurationError) {
            return .success(try DeploymentRouting.router(configuration, options: providerOptions))
        } catch {
            return .failure(UsageError(message: "option '--deployments \(path)': \(error.message)"))
        }
    }

    static func table(_ rows: [Router.DeploymentStats]) -> String {
        let header = ["deployment", "model", "provider", "calls", "ok", "openings", "open ms", "state", "p50 ms", "p95 ms", "p99 ms", "peak rpm", "failures"]
        var lines = [header]
        for row in rows {
            lines.append([
                StandardError.oneLine(row.name), StandardError.oneLine(row.model), StandardError.oneLine("\(row.provider):\(row.providerModel)"), "\(row.calls)",
                "\(row.succeeded)", "\(row.openings)", String(format: "%.0f", ms(row.timeOpen)), row.state, String(format: "%.1f", ms(row.latency.percentile(0.50))),
                String(format: "%.1f", ms(row.latency.percentile(0.95))), String(format: "%.1f", ms(row.latency.percentile(0.99))), "\(row.peakRequestsPerMinute)",
                row.failures.isEmpty ? "-" : row.failures.sorted { $0.key < $1.key }.map { "\(StandardError.oneLine($0.key)) \($0.value)" }.joined(separator: ", "),
            ])
        }
        var widths = [Int](repeating: 0, count: header.count)
        for line in lines { for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return lines.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    static func json(_ rows: [Router.DeploymentStats]) -> JSONValue {
        .array(
            rows.map { row in
                var failures = JSONObject()
                for (kind, count) in row.failures.sorted(by: { $0.key < $1.key }) { failures[kind] = .int(count) }
                return [
                    "deployment": .string(row.name), "model": .string(row.model), "provider": .string(row.provider), "provider_model": .string(row.providerModel),
                    "calls": .int(row.calls), "succeeded": .int(row.succeeded), "failures": .object(failures), "breaker_openings": .int(row.openings),
                    "open_ms": .double(ms(row.timeOpen)), "state": .string(row.state), "peak_requests_per_minute": .int(row.peakRequestsPerMinute),
                    "latency_ms": ["p50": .double(ms(row.latency.percentile(0.50))), "p95": .double(ms(row.latency.percentile(0.95))), "p99": .double(ms(row.latency.percentile(0.99)))],
                ]
            })
    }

    private static func ms(_ d: Duration) -> Double { StatsReport.milliseconds(d) }
}
