// swift-tools-version: 6.1
import PackageDescription

// Benchmarks live in their own package (like swift-nio's) so the library builds without the
// harness. `make bench` runs the `annals-headline` table; `swift package benchmark` runs the
// package-benchmark suites in Benchmarks/AnnalsBenchmarks.
let package = Package(
    name: "AnnalsBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Annals", path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The embedded stores a user would pick instead, from the system (Debian: libsqlite3-dev,
        // liblmdb-dev): used only here, never by the library.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .executableTarget(
            name: "annals-headline",
            dependencies: [
                .product(name: "AnnalsTestSupport", package: "Annals"), .product(name: "AnnalsStorage", package: "Annals"),
                .product(name: "Annals", package: "Annals"), .product(name: "AnnalsKafka", package: "Annals"), "CSQLite", "CLMDB",
            ],
            path: "Sources/Headline"
        ),
        .executableTarget(
            name: "AnnalsBenchmarks",
            dependencies: [
                .product(name: "AnnalsTestSupport", package: "Annals"),
                .product(name: "AnnalsStorage", package: "Annals"),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/AnnalsBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
