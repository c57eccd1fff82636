// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Linux only (glibc): the engine relies on Linux's mmap/msync/fallocate semantics and its boot id.
// macOS is not supported yet, so no Apple platform is declared.
let package = Package(
    name: "Annals",
    products: [
        .library(name: "Annals", targets: ["Annals"]),
        .library(name: "AnnalsStorage", targets: ["AnnalsStorage"]),
        // Publishing to Kafka through librdkafka: only apps that publish link it.
        .library(name: "AnnalsKafka", targets: ["AnnalsKafka"]),
        .executable(name: "annals", targets: ["AnnalsCLI"]),
        // Seeded generators (realistic events) shared by the tests and the Benchmarks package,
        // which can only reach another package's products. Not for apps.
        .library(name: "AnnalsTestSupport", targets: ["AnnalsTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.1.0"),
        // AES-256-GCM, HKDF and HMAC for encrypted events (BoringSSL on Linux).
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
        // Only the service example uses it (a Prometheus endpoint); apps never resolve it.
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
    ],
    targets: [
        // liblz4 from the system (Debian: liblz4-dev), found through pkg-config.
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"]), .brew(["lz4"])]
        ),
        // librdkafka from the system (Debian: librdkafka-dev), found through pkg-config.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"]), .brew(["librdkafka"])]
        ),
        // Tiny C helpers that need CPU intrinsics (hardware CRC-32C behind a runtime check).
        .target(name: "CAnnalsSupport"),
        .target(
            name: "AnnalsStorage",
            dependencies: [
                "CAnnalsSupport", "CLZ4",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "Annals",
            dependencies: [
                "AnnalsStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .target(
            name: "AnnalsKafka",
            dependencies: [
                "Annals", "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        .executableTarget(
            name: "AnnalsCLI",
            dependencies: [
                "Annals",
                "AnnalsKafka",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "AnnalsExamples", dependencies: ["Annals"], path: "Examples/Domain"),
        // The examples (bank account, orders) against a real store: `swift run annals-example`.
        .executableTarget(name: "annals-example", dependencies: ["AnnalsExamples"], path: "Examples/Run"),
        // A store, a projection, the Kafka relay and a writer in one ServiceGroup, stopped by SIGTERM.
        .executableTarget(
            name: "annals-service-example",
            dependencies: [
                "AnnalsExamples", "AnnalsKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Examples/Service"
        ),
        .target(name: "AnnalsTestSupport", dependencies: ["AnnalsStorage"], path: "Tests/AnnalsTestSupport"),
        .testTarget(name: "AnnalsStorageTests", dependencies: [
            "AnnalsStorage", "AnnalsTestSupport", .product(name: "MetricsTestKit", package: "swift-metrics"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
        ]),
        .testTarget(name: "AnnalsTests", dependencies: [
            "Annals", "AnnalsExamples", "AnnalsTestSupport", .product(name: "MetricsTestKit", package: "swift-metrics"),
            .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
        ]),
        // The README's example and the doc comments' examples, compiled (and the README's run).
        .testTarget(name: "AnnalsReadmeTests", dependencies: [
            "Annals", "AnnalsKafka",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(name: "AnnalsCLITests", dependencies: ["AnnalsCLI", "AnnalsStorage", "AnnalsTestSupport"]),
        .testTarget(name: "AnnalsKafkaTests", dependencies: [
            "AnnalsKafka", "AnnalsTestSupport", .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)

// The documentation plugin only when building the docs (`make docs` sets ANNALS_DOCS), so that
// an app depending on Annals never resolves it.
if ProcessInfo.processInfo.environment["ANNALS_DOCS"] != nil {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.4.0"))
}
