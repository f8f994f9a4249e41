import Foundation
@_exported import PipelineTestSupport

/// The CLI tests' view of the shared helpers, plus JSON Schema validation.
enum CLI {
    typealias Run = PipelineRun

    static var packageRoot: URL { TestPaths.packageRoot }
    static var binary: URL { TestPaths.pipelineBinary }

    static func run(_ arguments: [String], stdin: String = "", currentDirectory: URL? = nil, environment: [String: String]? = nil) throws -> Run {
        try runPipeline(arguments, stdin: stdin, currentDirectory: currentDirectory, environment: environment)
    }

    static func temporaryDirectory(files: [String: String] = [:]) throws -> URL {
        try PipelineTestSupport.temporaryDirectory(files: files)
    }

    /// Validates JSON lines against a schema in `Design/schema/` with a real JSON Schema validator.
    static func validate(_ jsonl: String, against schema: String) throws -> (valid: Bool, report: String) {
        if let problem = TestPaths.pythonPeersProblem { return (false, problem) }
        let process = Process()
        process.executableURL = TestPaths.python
        process.arguments = [packageRoot.appendingPathComponent("Tests/Tools/validate_jsonl.py").path,
                             packageRoot.appendingPathComponent("Design/schema/\(schema)").path]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(jsonl.utf8))
        try input.fileHandleForWriting.close()
        let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus == 0, report)
    }
}
