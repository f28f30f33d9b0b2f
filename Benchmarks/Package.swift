// swift-tools-version: 6.2
// Sluice benchmarks: a separate package so `swift test` at the root never builds benchmark code.
// FixedReplyServer: the EventLoop/TCP foundation serving a fixed HTTP reply, driven by wrk against nginx
// (scripts/bench-loop). LoopAllocations: ordo-one/benchmark counting mallocs per loopback round trip.
import PackageDescription

let package = Package(
    name: "SluiceBenchmarks",
    dependencies: [
        .package(name: "Sluice", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "FixedReplyServer",
            dependencies: [.product(name: "SluiceCore", package: "Sluice")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "LoopAllocations",
            dependencies: [
                .product(name: "SluiceCore", package: "Sluice"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/LoopAllocations",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
