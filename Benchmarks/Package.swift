// swift-tools-version: 6.2
// Sluice benchmarks: a separate package so `swift test` at the root never builds benchmark code.
// Each target names the peer it is compared with; recorded runs live in ../BENCHMARKS.md.
import PackageDescription

let benchmarkSettings: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "SluiceBenchmarks",
    dependencies: [
        .package(name: "Sluice", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The EventLoop/TCP foundation serving a fixed HTTP reply; wrk drives it against nginx
        // `return 200` (scripts/bench-loop).
        .executableTarget(
            name: "FixedReplyServer",
            dependencies: [.product(name: "SluiceCore", package: "Sluice")],
            swiftSettings: benchmarkSettings
        ),
        // Mallocs per loopback round trip on the foundation (ordo-one/benchmark's malloc counter).
        .executableTarget(
            name: "LoopAllocations",
            dependencies: [
                .product(name: "SluiceCore", package: "Sluice"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/LoopAllocations",
            swiftSettings: benchmarkSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The KPA decision maths for 10,000 revisions (no peer: Knative's Go autoscaler is not built here).
        .executableTarget(
            name: "KPADecisions",
            dependencies: [
                .product(name: "SluiceCore", package: "Sluice"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/KPADecisions",
            swiftSettings: benchmarkSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The HTTP/1.1 parser against its peers from Debian: picohttpparser inside libh2o (libh2o-dev)
        // and nodejs http-parser 2.9 (libhttp-parser-dev).
        .systemLibrary(name: "CPicoHTTPParser", path: "Sources/CPicoHTTPParser"),
        .systemLibrary(name: "CNodeHTTPParser", path: "Sources/CNodeHTTPParser"),
        .executableTarget(
            name: "HTTP1Parser",
            dependencies: [
                .product(name: "SluiceCore", package: "Sluice"),
                .product(name: "Benchmark", package: "benchmark"),
                "CPicoHTTPParser",
                "CNodeHTTPParser",
            ],
            path: "Benchmarks/HTTP1Parser",
            swiftSettings: benchmarkSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
