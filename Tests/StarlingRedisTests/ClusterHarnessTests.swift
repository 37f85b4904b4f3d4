// The cluster harness itself (ClusterSupport.swift), on the suite's real Redis Cluster: the
// shape the test command starts, a failover by SIGKILL and the node's return, a slot moved
// by hand with ASK while it migrates and MOVED after. The engine's cluster tests build on
// these helpers; if one of these fails, theirs mean nothing.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class ClusterHarnessTests: XCTestCase {
    /// The suite's cluster in the shape every test starts from.
    func healthyCluster() throws -> TestCluster {
        let cluster = try TestCluster()
        try cluster.ensureHealthy()
        return cluster
    }

    func testClusterIsUpWithThreeMastersAndThreeReplicasInSync() throws {
        let cluster = try healthyCluster()
        XCTAssertEqual(cluster.seeds.count, 3, "STARLING_TEST_REDIS_CLUSTER names the three masters")
        let nodes = try cluster.nodes()
        XCTAssertEqual(nodes.count, 6)
        let masters = try cluster.masters()
        XCTAssertEqual(masters.count, 3)
        XCTAssertEqual(masters.reduce(0) { $0 + $1.slotCount }, 16384)
        for m in masters {
            let replicas = try cluster.replicas(of: m)
            XCTAssertEqual(replicas.count, 1, "one replica of \(m)")
            for r in replicas {
                let repl = try cluster.info(r.port, "replication")
                XCTAssertEqual(repl["role"], "slave")
                XCTAssertEqual(repl["master_port"], "\(m.port)")
                XCTAssertEqual(repl["master_link_status"], "up")
            }
            XCTAssertEqual(try cluster.info(m.port, "replication")["connected_slaves"], "1")
        }
        for port in cluster.allPorts() {
            let info = try cluster.cli(port, "CLUSTER", "INFO")
            XCTAssertTrue(info.contains("cluster_state:ok"), ":\(port): \(info)")
        }
        // Channels spread over every master, as CLUSTER KEYSLOT places their keys.
        let channels = try cluster.channels(spreadOverAllMasters: 9)
        XCTAssertEqual(Set(channels).count, 9)
        var perMaster: [Int: Int] = [:]
        for ch in channels {
            let slot = try cluster.keyslot(ch)
            XCTAssertEqual(try cluster.cli(cluster.seedPorts[0], "CLUSTER", "KEYSLOT", "starling:{\(ch)}"), "\(slot)")
            perMaster[try cluster.masterPort(owning: slot), default: 0] += 1
        }
        XCTAssertEqual(perMaster.count, 3, "every master holds some: \(perMaster)")
        XCTAssertEqual(Set(perMaster.values), [3])
    }

    func testKillingAMasterPromotesItsReplicaAndTheNodeRejoinsAsReplica() throws {
        let cluster = try healthyCluster()
        let ch = try cluster.channels(spreadOverAllMasters: 3)[1]
        let key = "starling:{\(ch)}"
        let slot = try cluster.keyslot(ch)
        let before = try cluster.master(owning: slot)
        // WAIT on the connection that wrote (WAIT counts replicas that have that client's writes).
        let replies = try cluster.pipeline(before.port, [["XADD", key, "*", "d", "kept"], ["WAIT", "1", "5000"]])
        XCTAssertNotNil(EventID(replies[0]), "XADD on \(before) for slot \(slot): \(replies[0])")
        XCTAssertEqual(replies[1], "1", "the replica has the entry")

        let started = Date()
        let killed = try cluster.killMaster(owning: slot)
        XCTAssertEqual(killed.node.id, before.id)
        XCTAssertFalse(cluster.isUp(before.port))
        let promoted = try cluster.waitForPromotion(of: killed)
        let failover = Date().timeIntervalSince(started)
        XCTAssertEqual(promoted.id, killed.replicaID)
        XCTAssertTrue(promoted.isMaster)
        XCTAssertEqual(try cluster.master(owning: slot).id, promoted.id)
        XCTAssertEqual(try cluster.cli(promoted.port, "XLEN", key), "1", "the acknowledged entry survived")
        XCTAssertLessThan(failover, 15, "failover took \(failover) s")

        try cluster.restartKilledNode(killed)
        let back = try XCTUnwrap(try cluster.nodes().first { $0.id == before.id })
        XCTAssertFalse(back.isMaster)
        XCTAssertEqual(back.masterID, promoted.id, "the old master follows its successor")
        XCTAssertEqual(try cluster.info(back.port, "replication")["master_link_status"], "up")
        XCTAssertEqual(cluster.healthProblems(), [])
        print("cluster harness: failover of \(before) to \(promoted) in \(String(format: "%.1f", failover)) s")
    }

    func testMigratingASlotMovesItsKeysWithAskThenMoved() throws {
        let cluster = try healthyCluster()
        let ch = try cluster.channels(spreadOverAllMasters: 3)[2]
        let key = "starling:{\(ch)}"
        let slot = try cluster.keyslot(ch)
        let source = try cluster.master(owning: slot)
        let target = try XCTUnwrap(try cluster.masters().first { $0.id != source.id })
        let added = try cluster.cli(source.port, "XADD", key, "*", "d", "one")
        XCTAssertNotNil(EventID(added), "XADD on \(source) for slot \(slot): \(added)")
        XCTAssertEqual(try cluster.cli(source.port, "HSET", key + ":producers", "w", "0:1"), "1")

        let move = try SlotMigration(cluster: cluster, slot: slot, to: target)
        try move.begin()
        // MIGRATING: the source still serves the keys it holds.
        XCTAssertEqual(try cluster.cli(source.port, "XLEN", key), "1")
        XCTAssertEqual(try move.moveKeys(), 2)
        // Keys gone from the source: ASK to the target, which serves them only after ASKING.
        XCTAssertEqual(try cluster.cli(source.port, "XLEN", key), "ASK \(slot) 127.0.0.1:\(target.port)")
        XCTAssertEqual(try cluster.cli(target.port, "XLEN", key), "MOVED \(slot) 127.0.0.1:\(source.port)")
        XCTAssertEqual(try cluster.pipeline(target.port, [["ASKING"], ["XLEN", key]]).prefix(2), ["OK", "1"])
        try move.finish()
        // Moved: the source redirects for good, the target serves.
        XCTAssertEqual(try cluster.cli(source.port, "XLEN", key), "MOVED \(slot) 127.0.0.1:\(target.port)")
        XCTAssertEqual(try cluster.cli(target.port, "XLEN", key), "1")
        XCTAssertEqual(try cluster.cli(target.port, "HGET", key + ":producers", "w"), "0:1")
        XCTAssertEqual(try cluster.master(owning: slot).id, target.id)
        try cluster.waitHealthy(timeout: 10)

        // And back in one call, so the slot map is as the test found it.
        try cluster.migrateSlot(slot, to: source)
        XCTAssertEqual(try cluster.master(owning: slot).id, source.id)
        XCTAssertEqual(try cluster.cli(source.port, "XLEN", key), "1")
        try cluster.waitHealthy(timeout: 10)
    }

    func testEnsureHealthyRestartsANodeATestLeftDeadAndResetStartsAfresh() throws {
        let cluster = try healthyCluster()
        // A replica killed and left dead (as by a test that failed before its restart).
        let replica = try XCTUnwrap(try cluster.replicas(of: try cluster.masters()[0]).first)
        let pid = try XCTUnwrap(Int32(try cluster.info(replica.port, "server")["process_id"] ?? ""))
        XCTAssertEqual(kill(pid, SIGKILL), 0)
        while processAlive(pid) { usleep(10_000) }
        XCTAssertFalse(cluster.healthProblems().isEmpty)
        try cluster.ensureHealthy()
        XCTAssertEqual(cluster.healthProblems(), [])
        XCTAssertTrue(cluster.isUp(replica.port))

        // The last resort: a new cluster on the same ports, the seeds its masters again.
        let before = Set(try cluster.nodes().map(\.id))
        try cluster.resetCluster()
        XCTAssertEqual(cluster.healthProblems(), [])
        XCTAssertEqual(try cluster.masters().map(\.url), cluster.seeds)
        XCTAssertTrue(Set(try cluster.nodes().map(\.id)).isDisjoint(with: before), "new node IDs")
    }
}
