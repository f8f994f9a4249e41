// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "CommandPipeline",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CommandPipeline", targets: ["CommandPipeline"]),
        .executable(name: "pipeline", targets: ["pipeline"]),
    ],
    // No package dependencies: only what the toolchain ships.
    targets: [
        .target(name: "CommandPipeline"),
        .executableTarget(name: "pipeline", dependencies: ["CommandPipeline"]),
        .executableTarget(
            name: "PipelineBench",
            dependencies: ["CommandPipeline"],
            path: "Benchmarks/PipelineBench"
        ),
        .testTarget(name: "CommandPipelineTests", dependencies: ["CommandPipeline"]),
        // Runs the built `pipeline` binary as a subprocess; depends on it so `swift test` builds it.
        .testTarget(name: "PipelineCLITests", dependencies: ["pipeline"]),
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
