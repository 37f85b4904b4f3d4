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

/// Runs `body` once per engine against a fresh broker started with `arguments`.
func onEachEngine(_ arguments: [String] = [], file: StaticString = #filePath, line: UInt = #line,
                  _ body: (BrokerProcess, Engine) throws -> Void) throws {
    for engine in Engine.all {
        let broker = try BrokerProcess(try engine.arguments() + arguments)
        defer { broker.terminate() }
        do { try body(broker, engine) } catch {
            XCTFail("[\(engine)] \(error)", file: file, line: line)
        }
    }
}
