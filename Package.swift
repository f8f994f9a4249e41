// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "CommandPipeline",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CommandPipeline", targets: ["CommandPipeline"]),
        .library(name: "CommandPipelineHTTP", targets: ["CommandPipelineHTTP"]),
        // The SQLite result sink, over the system's libsqlite3 (a system library, not a package).
        .library(name: "CommandPipelineSQLite", targets: ["CommandPipelineSQLite"]),
        // The PostgreSQL result sink, over the system's libpq (a system library, not a package).
        .library(name: "CommandPipelinePostgres", targets: ["CommandPipelinePostgres"]),
        // Test doubles for users' own tests: a manual clock, in-memory sinks, scripted providers, a stage harness.
        .library(name: "CommandPipelineTesting", targets: ["CommandPipelineTesting"]),
        // Batch runs recorded in a job file: submit, status, collect, retry, cancel (Design/batch.md).
        .library(name: "CommandPipelineBatch", targets: ["CommandPipelineBatch"]),
        // A run's results folded into one report (`RunReport`): what `pipeline report` and `--stats` print.
        .library(name: "CommandPipelineReport", targets: ["CommandPipelineReport"]),
        .executable(name: "pipeline", targets: ["pipeline"]),
    ],
    // No package dependencies: only what the toolchain ships.
    targets: [
        .target(name: "CommandPipeline"),
        // Provider adapters over HTTP (own HTTP/1.1 client, TLS through the system's OpenSSL on Linux;
        // URLSession where there is no OpenSSL), so the engine core stays free of networking.
        .target(name: "CommandPipelineHTTP", dependencies: ["CommandPipeline", "CommandPipelineBatch", .target(name: "COpenSSL", condition: .when(platforms: [.linux]))]),
        // The system's libssl and libcrypto (Debian: libssl-dev), for https in the own transport (Linux only).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]),
        .target(name: "CommandPipelineTesting", dependencies: ["CommandPipeline"]),
        // Batch orchestration over any provider's BatchCapability: the job file, its restart rules, planning, collect and retry.
        .target(name: "CommandPipelineBatch", dependencies: ["CommandPipeline"]),
        // Result records folded into totals, rows per provider and model, failures and the caches' effect.
        .target(name: "CommandPipelineReport", dependencies: ["CommandPipeline"]),
        // The system's libsqlite3 (Debian: libsqlite3-dev), for the SQLite result sink only.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]),
        .target(name: "CommandPipelineSQLite", dependencies: ["CommandPipeline", "CSQLite"]),
        // The system's libpq (Debian: libpq-dev), for the PostgreSQL result sink only.
        .systemLibrary(name: "CPostgres", pkgConfig: "libpq", providers: [.apt(["libpq-dev"]), .brew(["libpq"])]),
        .target(name: "CommandPipelinePostgres", dependencies: ["CommandPipeline", "CPostgres"]),
        .executableTarget(name: "pipeline", dependencies: ["CommandPipeline", "CommandPipelineBatch", "CommandPipelineReport", "CommandPipelineHTTP", "CommandPipelineSQLite", "CommandPipelinePostgres"]),
        .executableTarget(
            name: "PipelineBench",
            dependencies: ["CommandPipeline", "CommandPipelineTesting"],
            path: "Benchmarks/PipelineBench"
        ),
        // Helpers shared by the test targets (running the binary, temp dirs, Python peers).
        .target(name: "PipelineTestSupport", path: "Tests/PipelineTestSupport"),
        .testTarget(name: "CommandPipelineTests", dependencies: ["CommandPipeline", "CommandPipelineBatch", "CommandPipelineReport", "CommandPipelineTesting", "PipelineTestSupport"]),
        // Runs against FakeAI and a local fault server (Tests/Tools), and the built `pipeline` binary.
        .testTarget(name: "CommandPipelineHTTPTests", dependencies: ["CommandPipelineHTTP", "CommandPipelineBatch", "CommandPipelineTesting", "pipeline", "PipelineTestSupport"]),
        // Runs the built `pipeline` binary as a subprocess; depends on it so `swift test` builds it.
        .testTarget(name: "PipelineCLITests", dependencies: ["pipeline", "PipelineTestSupport"]),
        // The SQLite sink, read back with Python's sqlite3.
        .testTarget(name: "CommandPipelineSQLiteTests", dependencies: ["CommandPipelineSQLite", "CommandPipelineTesting", "PipelineTestSupport"]),
        // The PostgreSQL sink against a throwaway PostgreSQL server the tests start (Debian's postgresql).
        .testTarget(name: "CommandPipelinePostgresTests", dependencies: ["CommandPipelinePostgres", "CommandPipelineTesting", "pipeline", "PipelineTestSupport"]),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    // Swift 6 language mode: complete strict concurrency checking.
    settings.append(.swiftLanguageMode(.v6))
    // Existentials are spelled `any P`, so every dynamic dispatch is visible at the use site.
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    if target.name == "CommandPipeline" { settings.append(.enableUpcomingFeature("NonisolatedNonsendingByDefault")) }
    target.swiftSettings = settings
}
