// swift-tools-version:6.0
// Starling: an SSE fan-out broker on libuv. Arrows point one way:
// starling → StarlingServer → StarlingHTTP, StarlingStore → StarlingCore → C shims.
import PackageDescription

// The publish and fan-out path runs in these modules. Release builds leave out the
// dynamic exclusivity checks there: measured at about 15 % of the user-space
// instructions per publish (swift_beginAccess and its access set on every class
// property touched), while the static checks stay and debug builds (the tests) still
// check at run time. docs/benchmarks.md, "Hot path".
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Starling",
    products: [
        .executable(name: "starling", targets: ["starling"]),
        .executable(name: "starling-load", targets: ["starling-load"]),
        .library(name: "StarlingClient", targets: ["StarlingClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", "4.1.0"..<"6.0.0"),
        // YAML configuration files (docs/operations.md says why not swift-configuration).
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        // C shims: module maps over Debian's -dev packages, nothing else.
        .systemLibrary(name: "CLibUV", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CHTTPParser", providers: [.apt(["libhttp-parser-dev"])]),

        // Plain Swift, no I/O: events, IDs, the SSE codec, JSON, queues, timers.
        .target(name: "StarlingCore", dependencies: [
            .product(name: "DequeModule", package: "swift-collections"),
        ], swiftSettings: hotPath),
        // The one wrapper over libuv: loop, timer, cross-loop inbox, signals, loop groups.
        .target(name: "StarlingLoop", dependencies: ["CLibUV"], swiftSettings: hotPath),
        // The storage engines behind one protocol.
        .target(name: "StarlingStore", dependencies: [
            "StarlingCore", "StarlingLoop", "CHiredis", "CLibUV",
            .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: hotPath),
        // libuv TCP + the C HTTP parser: server, connections, requests, responses.
        .target(name: "StarlingHTTP", dependencies: [
            "CLibUV", "CHTTPParser", "StarlingCore", "StarlingLoop",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: hotPath),
        // Who may publish and subscribe: JWT verification (jwt-kit) and channel claims.
        .target(name: "StarlingAuth", dependencies: [
            "StarlingCore",
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CryptoExtras", package: "swift-crypto"),
        ]),
        // The broker: routes, subscriptions, fan-out, heartbeats.
        .target(name: "StarlingServer", dependencies: [
            "StarlingHTTP", "StarlingStore", "StarlingCore", "StarlingAuth", "StarlingLoop",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Atomics", package: "swift-atomics"),
            .product(name: "DequeModule", package: "swift-collections"),
        ], exclude: ["Assets"], swiftSettings: hotPath),
        // Blocking Swift client used by the tests (and by tools that need no loop).
        .target(name: "StarlingClient", dependencies: ["StarlingCore"]),
        // The operator's configuration: file (TOML or YAML) < STARLING_* environment < flags,
        // validated into plain values; no I/O beyond reading the files it names.
        .target(name: "StarlingConfig", dependencies: [
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "starling", dependencies: [
            "StarlingServer", "StarlingStore", "StarlingAuth", "StarlingLoop", "StarlingConfig",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // The load generator (SPEC §8): its engine as a library the tests can drive, and the CLI.
        .target(name: "StarlingLoadKit", dependencies: [
            "CLibUV", "CHTTPParser", "StarlingCore", "StarlingLoop",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ], path: "Tools/starling-load/StarlingLoadKit"),
        .executableTarget(name: "starling-load", dependencies: [
            "StarlingLoadKit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Tools/starling-load/main"),

        .testTarget(name: "StarlingCoreTests", dependencies: ["StarlingCore", "StarlingStore"]),
        .testTarget(name: "StarlingHTTPTests", dependencies: ["StarlingHTTP", "CHTTPParser"]),
        .testTarget(name: "StarlingServerTests", dependencies: ["StarlingClient", "StarlingCore", "StarlingAuth"]),
        .testTarget(name: "StarlingAuthTests", dependencies: ["StarlingAuth", "StarlingCore", "StarlingClient"]),
        .testTarget(name: "StarlingRedisTests", dependencies: ["StarlingClient", "StarlingCore"]),
        .testTarget(name: "StarlingLoadTests", dependencies: ["StarlingLoadKit", "StarlingClient", "StarlingCore"]),
    ],
    swiftLanguageModes: [.v6]
)
