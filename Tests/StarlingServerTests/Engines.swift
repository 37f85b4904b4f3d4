// The engines every broker test runs on: one suite, parameterized. The Redis engine's
// URL comes from the test command, which starts a private redis-server.
import StarlingClient
import XCTest

enum Engine: String, CaseIterable {
    case memory, redis

    /// Both engines unless STARLING_TEST_ENGINES narrows it (e.g. `memory` for a quick
    /// run without Redis). The Redis runs fail, never skip, when Redis is missing.
    static var all: [Engine] {
        ProcessInfo.processInfo.environment["STARLING_TEST_ENGINES"].map {
            $0.split(separator: ",").compactMap { Engine(rawValue: String($0)) }
        } ?? [.memory, .redis]
    }

    func arguments() throws -> [String] {
        switch self {
        case .memory: return []
        case .redis: return ["--redis", try BrokerProcess.redisURL()]
        }
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
    for engine in Engine.all {
        for threads in LoopCounts.all {
            let run = EngineRun(engine: engine, threads: threads)
            let broker = try BrokerProcess(try engine.arguments() + ["--threads", "\(threads)"] + arguments)
            defer { broker.terminate() }
            do { try body(broker, run) } catch {
                XCTFail("[\(run)] \(error)", file: file, line: line)
            }
        }
    }
}
