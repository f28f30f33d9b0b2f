// swift-tools-version: 6.2
// Sluice benchmarks: a separate package so `swift test` at the root never builds benchmark code.
// FixedReplyServer: the EventLoop/TCP foundation serving a fixed HTTP reply, driven by wrk against nginx
// (scripts/bench-loop).
import PackageDescription

let package = Package(
    name: "SluiceBenchmarks",
    dependencies: [
        .package(name: "Sluice", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "FixedReplyServer",
            dependencies: [.product(name: "SluiceCore", package: "Sluice")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
