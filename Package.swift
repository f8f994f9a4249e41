// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "CommandPipeline",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CommandPipeline", targets: ["CommandPipeline"]),
        .library(name: "CommandPipelineHTTP", targets: ["CommandPipelineHTTP"]),
        // Test doubles for users' own tests: a manual clock, in-memory sinks, scripted providers, a stage harness.
        .library(name: "CommandPipelineTesting", targets: ["CommandPipelineTesting"]),
        .executable(name: "pipeline", targets: ["pipeline"]),
    ],
    // No package dependencies: only what the toolchain ships.
    targets: [
        .target(name: "CommandPipeline"),
        // Provider adapters over HTTP (own HTTP/1.1 for plain http, URLSession for https), so the engine core stays free of networking.
        .target(name: "CommandPipelineHTTP", dependencies: ["CommandPipeline"]),
        .target(name: "CommandPipelineTesting", dependencies: ["CommandPipeline"]),
        .executableTarget(name: "pipeline", dependencies: ["CommandPipeline", "CommandPipelineHTTP"]),
        .executableTarget(
            name: "PipelineBench",
            dependencies: ["CommandPipeline", "CommandPipelineTesting"],
            path: "Benchmarks/PipelineBench"
        ),
        // Helpers shared by the test targets (running the binary, temp dirs, Python peers).
        .target(name: "PipelineTestSupport", path: "Tests/PipelineTestSupport"),
        .testTarget(name: "CommandPipelineTests", dependencies: ["CommandPipeline", "CommandPipelineTesting", "PipelineTestSupport"]),
        // Runs against FakeAI and a local fault server (Tests/Tools), and the built `pipeline` binary.
        .testTarget(name: "CommandPipelineHTTPTests", dependencies: ["CommandPipelineHTTP", "CommandPipelineTesting", "pipeline", "PipelineTestSupport"]),
        // Runs the built `pipeline` binary as a subprocess; depends on it so `swift test` builds it.
        .testTarget(name: "PipelineCLITests", dependencies: ["pipeline", "PipelineTestSupport"]),
    ]
)

for target in package.targets {
    var settings = target.swiftSettings ?? []
    // Swift 6 language mode: complete strict concurrency checking.
    settings.append(.swiftLanguageMode(.v6))
    // Existentials are spelled `any P`, so every dynamic dispatch is visible at the use site.
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    target.swiftSettings = settings
}
