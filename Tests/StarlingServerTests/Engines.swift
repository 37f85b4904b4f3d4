// The engines every broker test runs on: one suite, parameterized. The Redis engine's
// URL comes from the test command, which starts a private redis-server; the cluster
// engine's seeds (STARLING_TEST_REDIS_CLUSTER) from the private Redis Cluster it starts.
import StarlingClient
import XCTest

enum Engine: String, CaseIterable {
    case memory, redis, cluster

    /// Both engines unless STARLING_TEST_ENGINES narrows it (e.g. `memory` for a quick
    /// run without Redis; names separated by commas or spaces). The Redis runs fail, never
    /// skip, when Redis is missing. A name that is no engine stops the run: silently
    /// dropping it could leave no engine at all, and every engine test would pass untried.
    static var all: [Engine] {
        guard let list = ProcessInfo.processInfo.environment["STARLING_TEST_ENGINES"] else { return [.memory, .redis] }
        let names = list.split { $0 == "," || $0 == " " }.map(String.init)
        let engines = names.compactMap(Engine.init(rawValue:))
        precondition(engines.count == names.count && !engines.isEmpty,
                     "STARLING_TEST_ENGINES=\(list): expected memory, redis and/or cluster")
        return engines
    }

    func arguments() throws -> [String] {
        switch self {
        case .memory: return []
        case .redis: return ["--redis", try BrokerProcess.redisURL()]
        case .cluster: return ["--redis-cluster", try Self.clusterSeeds()]
        }
    }

    /// STARLING_TEST_REDIS_CLUSTER: comma-separated seed URLs of the suite's Redis Cluster.
    static func clusterSeeds() throws -> String {
        guard let seeds = ProcessInfo.processInfo.environment["STARLING_TEST_REDIS_CLUSTER"], !seeds.isEmpty else {
            throw ClientError("STARLING_TEST_REDIS_CLUSTER is not set: run the suite with `make test`, which starts a private Redis Cluster")
        }
        return seeds
    }

    /// The suites that run on the cluster engine too (the replay, final/204/409,
    /// gap, producer and multiplexed ones), at one loop count: every other suite would
    /// prove nothing new there and cost minutes of CI. STARLING_TEST_ENGINES naming
    /// `cluster` runs every suite on it.
    static let clusterSuites: Set<String> = ["ReplayTests.swift", "FinalTests.swift", "GapPastEndTests.swift",
                                             "ProducerTests.swift", "MultiplexTests.swift"]

    /// The engine/loop-count runs for a test in `file`.
    static func runs(file: StaticString) -> [EngineRun] {
        var runs = all.flatMap { engine in LoopCounts.all.map { EngineRun(engine: engine, threads: $0) } }
        let name = "\(file)".split(separator: "/").last.map(String.init) ?? ""
        if !all.contains(.cluster), ProcessInfo.processInfo.environment["STARLING_TEST_ENGINES"] == nil, clusterSuites.contains(name) {
            runs.append(EngineRun(engine: .cluster, threads: 2))
        }
        return runs
    }
}

/// The loop counts every broker test runs with: one loop, and four (more loops than this
/// machine's cores, so connections, publishers and subscribers land on different loops).
/// STARLING_TEST_THREADS narrows it (e.g. `1`).
enum LoopCounts {
    static var all: [Int] {
        ProcessInfo.processInfo.environment["STARLING_TEST_THREADS"].map {
            $0.split(separator: ",").compactMap { Int($0) }
        } ?? [1, 4]
    }
}

/// One engine at one loop count, as test failures name it.
struct EngineRun: CustomStringConvertible {
    let engine: Engine
    let threads: Int
    var description: String { "\(engine.rawValue), --threads \(threads)" }
    static func == (run: EngineRun, engine: Engine) -> Bool { run.engine == engine }
    static func != (run: EngineRun, engine: Engine) -> Bool { run.engine != engine }
}

/// Runs `body` once per engine and loop count against a fresh broker started with `arguments`.
func onEachEngine(_ arguments: [String] = [], file: StaticString = #filePath, line: UInt = #line,
                  _ body: (BrokerProcess, EngineRun) throws -> Void) throws {
    for run in Engine.runs(file: file) {
        let broker = try BrokerProcess(try run.engine.arguments() + ["--threads", "\(run.threads)"] + arguments)
        defer { broker.terminate() }
        do { try body(broker, run) } catch {
            XCTFail("[\(run)] \(error)", file: file, line: line)
        }
    }
}
