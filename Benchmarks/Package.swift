// swift-tools-version: 6.2
// Sluice benchmarks: a separate package so `swift test` never builds benchmark dependencies.
// Run from this folder: swift package benchmark (see BENCHMARKS.md for the recorded runs).
import PackageDescription

let package = Package(
    name: "SluiceBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Sluice", path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The KPA decision maths for 10,000 revisions (no peer: Knative's Go autoscaler is not built here).
        .executableTarget(
            name: "KPADecisions",
            dependencies: [
                .product(name: "SluiceCore", package: "Sluice"),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/KPADecisions",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
