// swift-tools-version: 6.2
// Sluice benchmarks: a separate package so `swift test` never builds benchmark dependencies.
// Each benchmark names the peer it is compared with; results go to ../BENCHMARKS.md.
import PackageDescription

let package = Package(
    name: "SluiceBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Sluice", path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Peers of the HTTP/1.1 parser, from Debian: picohttpparser inside libh2o (libh2o-dev), and
        // nodejs http-parser 2.9 (libhttp-parser-dev).
        .systemLibrary(name: "CPicoHTTPParser", path: "Sources/CPicoHTTPParser"),
        .systemLibrary(name: "CNodeHTTPParser", path: "Sources/CNodeHTTPParser"),
        .executableTarget(
            name: "HTTP1Parser",
            dependencies: [
                .product(name: "SluiceCore", package: "Sluice"),
                .product(name: "Benchmark", package: "package-benchmark"),
                "CPicoHTTPParser",
                "CNodeHTTPParser",
            ],
            path: "Benchmarks/HTTP1Parser",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
