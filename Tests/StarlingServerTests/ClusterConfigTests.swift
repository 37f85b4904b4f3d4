// The cluster engine's settings over the real binary: --redis-cluster (flag, comma list,
// STARLING_REDIS_CLUSTER), its exclusions and masking, and --redis-wait's bounds.
import Foundation
import StarlingClient
import XCTest

final class ClusterConfigTests: XCTestCase {
    func refused(_ args: [String], _ env: [String: String] = [:], naming names: [String],
                 file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try BrokerProcess.run(["serve", "--listen", "127.0.0.1:0"] + args, environment: env, timeout: 10)
        XCTAssertEqual(r.status, 78, "\(args) \(env): \(r.stdout) \(r.stderr)", file: file, line: line)
        for n in names { XCTAssertTrue(r.stderr.contains(n), "'\(n)' not in: \(r.stderr)", file: file, line: line) }
        XCTAssertFalse(r.stderr.contains("hunter2"), "a password in: \(r.stderr)", file: file, line: line)
    }

    func testBadClusterAndWaitSettingsAreRefusedByName() throws {
        try refused(["--redis", "redis://127.0.0.1:6379", "--redis-cluster", "redis://127.0.0.1:7000"], naming: ["redis_cluster", "one of the two"])
        try refused([], ["STARLING_REDIS": "redis://127.0.0.1:6379", "STARLING_REDIS_CLUSTER": "redis://127.0.0.1:7000"],
                    naming: ["redis_cluster"])
        try refused(["--redis-cluster", "redis://127.0.0.1:7000,http://127.0.0.1:7001"], naming: ["redis_cluster", "'http://127.0.0.1:7001'"])
        try refused(["--redis-cluster", "redis://:hunter2@127.0.0.1:7000/3"], naming: ["redis_cluster", "database 0"])
        try refused(["--redis-cluster", "rediss://127.0.0.1:7000"], naming: ["redis_cluster", "TLS"])
        try refused(["--redis-wait", "1"], naming: ["redis_wait", "needs redis"])
        try refused(["--redis", "redis://127.0.0.1:6379"], ["STARLING_REDIS_WAIT": "-1"], naming: ["redis_wait", "below"])
        try refused(["--redis", "redis://127.0.0.1:6379", "--redis-wait", "1", "--redis-wait-timeout", "soon"], naming: ["redis_wait_timeout"])
    }

    /// `starling check` reaches every seed given in STARLING_REDIS_CLUSTER and never
    /// prints a password.
    func testCheckProbesEverySeedAndMasksPasswords() throws {
        let seeds = try Engine.clusterSeeds()
        let r = try BrokerProcess.run(["check"], environment: ["STARLING_REDIS_CLUSTER": seeds])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        for seed in seeds.split(separator: ",") {
            let hostPort = seed.dropFirst("redis://".count).split(separator: "/")[0]
            XCTAssertTrue(r.stdout.contains("ok: redis redis://\(hostPort)/0: Redis 7"), r.stdout)
        }
        let masked = try BrokerProcess.run(["check", "--redis-cluster", "redis://:hunter2@127.0.0.1:1"])
        XCTAssertFalse((masked.stdout + masked.stderr).contains("hunter2"), masked.stdout + masked.stderr)
    }
}
