// swift-tools-version: 6.2
// Sluice: the Knative Serving data plane on its own epoll stack.
// One core module (SluiceCore) in layered folders; thin executables over it.
import PackageDescription

let strictCore: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .strictMemorySafety(),
]

let package = Package(
    name: "Sluice",
    products: [
        .library(name: "SluiceCore", targets: ["SluiceCore"]),
        .executable(name: "sluice", targets: ["sluice"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        .target(name: "CEpoll"),
        .target(
            name: "SluiceCore",
            dependencies: [
                "CEpoll",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictCore
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "SluiceCoreTests",
            dependencies: ["SluiceCore"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
