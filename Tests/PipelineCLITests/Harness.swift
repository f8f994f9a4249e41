import Foundation
@_exported import PipelineTestSupport

/// The CLI tests' view of the shared helpers, plus JSON Schema validation.
enum CLI {
    typealias Run = PipelineRun

    static var packageRoot: URL { TestPaths.packageRoot }
    static var binary: URL { TestPaths.pipelineBinary }

    /// With `timeout`, a run still going after it is killed and comes back `timedOut`.
    static func run(
        _ arguments: [String], stdin: String = "", currentDirectory: URL? = nil, environment: [String: String]? = nil, timeout: Duration? = nil
    ) async throws -> Run {
        try await runPipeline(arguments, stdin: stdin, currentDirectory: currentDirectory, environment: environment, timeout: timeout)
    }

    static func temporaryDirectory(files: [String: String] = [:]) throws -> URL {
        try PipelineTestSupport.temporaryDirectory(files: files)
    }

    /// Validates JSON lines against a schema in `Design/schema/` with a real JSON Schema validator.
    static func validate(_ jsonl: String, against schema: String) async throws -> (valid: Bool, report: String) {
        try await validateJSONLines(jsonl, against: schema)
    }
}
