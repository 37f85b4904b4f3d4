// The Redis Cluster engine on a real cluster: channels on every master, two broker nodes,
// a slot moved during a stream (ASK and MOVED both followed), and a master killed during a
// stream of numbered publishes with --redis-wait 1. Nothing acknowledged is lost or
// delivered twice. All on the suite's cluster (ClusterSupport.swift: TestCluster), which
// every test first brings back to 3 masters with an in-sync replica each. Needs
// STARLING_TEST_REDIS_CLUSTER (fails without it; never skips).
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class ClusterEngineTests: XCTestCase {
    var cluster: TestCluster!

    override func setUpWithError() throws {
        cluster = try TestCluster()
        try cluster.ensureHealthy()
    }

    func twoNodes(_ seeds: String, _ extra: [String] = []) throws -> (BrokerProcess, BrokerProcess) {
        (try BrokerProcess(["--redis-cluster", seeds, "--threads", "2"] + extra),
         try BrokerProcess(["--redis-cluster", seeds, "--threads", "2"] + extra))
    }

    func lastID(_ r: HTTPResponse) throws -> String {
        guard r.status == 200, let id = try JSONParser.parse(r.body)["last"]?.stringValue else {
            throw ClientError("publish answered \(r.status): \(r.text)")
        }
        return id
    }

    /// Live, replay, multiplexed, producer and final/204/409 on one channel of each master,
    /// published on node A and read on node B.
    func testEveryShardServesLiveReplayMultiplexProducerAndFinalAcrossNodes() throws {
        let channels = try cluster.channels(spreadOverAllMasters: 3, prefix: "shard")
        let owners = try cluster.keyslots(channels).map { try cluster.masterPort(owning: $0) }
        XCTAssertEqual(Set(owners).count, 3, "one channel on each of the three masters (CLUSTER KEYSLOT)")
        let (a, b) = try twoNodes(cluster.seedList)
        defer { a.terminate(); b.terminate() }

        let live = try channels.map { try b.client.subscribe($0) }
        for s in live { XCTAssertEqual(s.head.status, 200) }
        for ch in channels { try a.publish(ch, 1...20, batch: 3) }
        for s in live { XCTAssertEqual(try readInOrder(s, count: 20), numbered(1...20)) }

        for ch in channels {
            let replay = try b.client.subscribe(ch, lastEventID: "earliest")
            XCTAssertEqual(try readInOrder(replay, count: 20), numbered(1...20), "replay of \(ch) on B")
        }

        let q = channels.map { "channel=\($0)" }.joined(separator: "&")
        let c = try BlockingConnection(port: b.port)
        try c.send(StarlingHTTPClient.format("GET", "/v1/events?\(q)", headers: []))
        let many = SSEStream(connection: c, head: try HTTPResponse.read(from: c))
        XCTAssertEqual(many.head.status, 200)
        for ch in channels { try a.publish(ch, 21...25, batch: 2) }
        var got: [String: [String]] = [:]
        for m in try many.next(15, timeout: 10) {
            let env = try JSONParser.parse(Array(m.data.utf8))
            got[env["channel"]?.stringValue ?? "?", default: []].append(env["data"]?.stringValue ?? "?")
        }
        for ch in channels { XCTAssertEqual(got[ch], numbered(21...25), "multiplexed \(ch)") }

        for ch in channels {
            XCTAssertEqual(try a.client.publish(ch, json: #"{"data":"p1","producer":"w","seq":1}"#).status, 200)
            XCTAssertEqual(try a.client.publish(ch, json: #"{"data":"p1","producer":"w","seq":1}"#).status, 200, "a duplicate")
            let gap = try a.client.publish(ch, json: #"{"data":"p3","producer":"w","seq":3}"#)
            XCTAssertEqual(gap.status, 409)
            XCTAssertTrue(gap.text.contains("producer_seq_gap"), gap.text)

            let final = try lastID(try a.client.publish(ch, json: #"{"data":"end","final":true}"#))
            XCTAssertEqual(try a.client.publish(ch, json: #"{"data":"late"}"#).status, 409)
            XCTAssertEqual(try b.client.subscribe(ch, lastEventID: final).head.status, 204)
        }
        for s in live {
            let rest = try s.readToEnd(timeout: 10).map { $0.data }
            XCTAssertEqual(rest, numbered(21...25) + ["p1", "end"], "live stream ends with the final event")
        }
        // The broker's CRC16 slots are the cluster's: on a stable cluster nothing was redirected.
        for node in [a, b] {
            XCTAssertEqual(try redirects(node, "moved"), 0)
            XCTAssertEqual(try redirects(node, "ask"), 0)
        }
    }

    /// Notifications far larger than one read of the subscriber connection (64 KiB) are
    /// reassembled by the RESP reader: 200 KB events arrive whole on the other node.
    func testLargeEventsCrossTheShardedSubscriberConnectionWhole() throws {
        let (a, b) = try twoNodes(cluster.seedList)
        defer { a.terminate(); b.terminate() }
        let ch = uniqueChannel("large")
        let s = try b.client.subscribe(ch)
        let bodies = (0..<3).map { k in String(repeating: "abcdefghij", count: 20_000) + "-\(k)" }
        for body in bodies { XCTAssertEqual(try a.client.publish(ch, json: "{\"data\":\"\(body)\"}").status, 200) }
        XCTAssertEqual(try readInOrder(s, count: 3), bodies)
    }

    /// A slot holding a live channel moves to another master while node B publishes and
    /// node A's subscribers read: B follows ASK (keys moved, slot not yet handed over) and
    /// MOVED (its map is stale after the hand-over); A re-subscribes on the new master.
    func testReshardingDuringAStreamLosesNothingAndFollowsAskAndMoved() throws {
        let ch = try cluster.channels(spreadOverAllMasters: 3, prefix: "reshard")[0]
        let slot = try cluster.keyslot(ch)
        let source = try cluster.master(owning: slot)
        let target = try cluster.masters().first { $0.id != source.id }!
        let (a, b) = try twoNodes(cluster.seedList)
        defer { a.terminate(); b.terminate() }
        let onA = try a.client.subscribe(ch)
        let replayFrom = try lastID(try b.client.publish(ch, json: #"{"data":"e-0"}"#))

        final class Log: @unchecked Sendable {
            let lock = NSLock()
            var acked: [Int] = []
            var refused: [String] = []
            var stop = false
        }
        let log = Log()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            defer { done.signal() }
            var n = 1
            while !(log.lock.withLock { log.stop }) {
                let r = try? b.client.publish(ch, json: "{\"data\":\"e-\(n)\"}")
                log.lock.withLock {
                    if r?.status == 200 { log.acked.append(n) } else { log.refused.append("\(n): \(r?.status ?? 0) \(r?.text ?? "")") }
                }
                n += 1
                usleep(3_000)
            }
        }
        usleep(300_000)
        let move = try SlotMigration(cluster: cluster, slot: slot, to: target)
        try move.begin()
        try move.moveKeys()
        usleep(400_000)  // the ASK window: every key on the target, the slot still the source's
        try move.finish()
        usleep(600_000)
        log.lock.withLock { log.stop = true }
        done.wait()

        XCTAssertEqual(log.refused, [], "a publish during a resharding is followed, never refused")
        let acked = log.acked
        XCTAssertGreaterThan(acked.count, 100)
        XCTAssertEqual(try readInOrder(onA, count: acked.count + 1), ["e-0"] + acked.map { "e-\($0)" }, "live on A: every event once, in order")
        XCTAssertNil(try onA.next(timeout: 0.5), "nothing twice")
        let replay = try a.client.subscribe(ch, lastEventID: replayFrom)
        XCTAssertEqual(try readInOrder(replay, count: acked.count), acked.map { "e-\($0)" }, "replay from the new master")
        XCTAssertEqual(try cluster.master(owning: slot).id, target.id, "the slot moved")
        let ask = try redirects(b, "ask"), moved = try redirects(b, "moved")
        print("resharding: \(acked.count) acknowledged, \(acked.count) delivered in order, 0 lost, 0 duplicated; B followed \(ask) ASK and \(moved) MOVED")
        XCTAssertGreaterThan(ask, 0, "ASK followed while the keys had moved and the slot had not")
        XCTAssertGreaterThan(moved, 0, "MOVED followed after the hand-over")
    }

    /// SIGKILL of a master during a stream of numbered publishes, with --redis-wait 1: the
    /// shard answers 503 until its replica is promoted and has a replica again (the killed
    /// node, restarted, rejoins as one), the other shards keep answering 200,
    /// and every event answered 200 reaches the subscribers on both nodes exactly once, in
    /// order (an event answered 503 may or may not be there: it was never promised).
    func testFailoverWithRedisWaitNeverAcknowledgesALostEvent() throws {
        let placed = try cluster.channels(spreadOverAllMasters: 3, prefix: "failover")
        let victim = placed[0], other = placed[1]
        let slot = try cluster.keyslot(victim)
        let (a, b) = try twoNodes(cluster.seedList, ["--redis-wait", "1", "--redis-wait-timeout", "1s"])
        defer { a.terminate(); b.terminate() }
        let onA = try a.client.subscribe(victim)
        let onB = try b.client.subscribe(victim)
        // Replicas are in sync (setUp), but one just online acknowledges within about a
        // second: until every shard confirms a write, a refusal would not be the failover's.
        for ch in placed {
            try waitFor("a publish to \(ch) confirmed by a replica", 10) {
                (try? a.client.publish(ch, json: #"{"data":"warm"}"#).status) == 200
            }
        }
        var reasons: Set<String> = []
        var promotedAfter: Double?
        var lastLook = Date()

        var acked: [Int] = []
        var refused = 0
        var otherRefused = 0
        var killed: KilledNode?
        var killedAt: Date?
        var recoveredAfter: Double?
        let start = Date()
        var n = 0
        while Date().timeIntervalSince(start) < 25 {
            n += 1
            let r = try a.client.publish(victim, json: "{\"data\":\"e-\(n)\"}")
            if r.status == 200 {
                acked.append(n)
                if let k = killedAt, recoveredAfter == nil, refused > 0 { recoveredAfter = Date().timeIntervalSince(k) }
            } else {
                XCTAssertEqual(r.status, 503, r.text)
                XCTAssertNotNil(r.header("Retry-After"))
                XCTAssertNotNil(killedAt, "no refusal before the kill: \(r.text)")
                reasons.insert((try? JSONParser.parse(r.body))?["error"]?["code"]?.stringValue ?? r.text)
                refused += 1
            }
            if let k = killedAt, let dead = killed, promotedAfter == nil, Date().timeIntervalSince(lastLook) > 0.1 {
                lastLook = Date()
                if let owner = try? cluster.master(owning: slot), owner.port != dead.port {
                    // The replica took over: the killed node comes back and rejoins as its replica.
                    promotedAfter = Date().timeIntervalSince(k)
                    try cluster.relaunch(dead)
                }
            }
            if n % 5 == 0, try a.client.publish(other, json: "{\"data\":\"o-\(n)\"}").status != 200 { otherRefused += 1 }
            if killedAt == nil, n == 50 {
                killed = try cluster.killMaster(owning: slot)
                killedAt = Date()
            }
            if let r = recoveredAfter, Date().timeIntervalSince(killedAt!) > r + 1 { break }
            usleep(5_000)
        }
        XCTAssertGreaterThan(refused, 0, "publishes to the failed shard answered 503 meanwhile")
        XCTAssertNotNil(recoveredAfter, "the replica was promoted and publishes succeed again")
        XCTAssertEqual(otherRefused, 0, "the other shards kept working")
        try cluster.waitHealthy()
        print("failover: 503 codes \(reasons.sorted()); replica promoted \(String(format: "%.1f", promotedAfter ?? -1)) s after the SIGKILL")
        for (name, s) in [("A", onA), ("B", onB)] {
            var seen: [Int] = []
            let deadline = Date().addingTimeInterval(15)
            while seen.filter({ acked.contains($0) }).count < acked.count, Date() < deadline, let m = try s.next(timeout: 5) {
                guard m.event != "starling.gap" else { continue }
                if let k = Int(m.data.dropFirst(2)) { seen.append(k) }
            }
            XCTAssertEqual(seen.filter { acked.contains($0) }, acked, "node \(name): every acknowledged event once, in order")
            XCTAssertEqual(seen, seen.sorted(), "node \(name): in order")
            XCTAssertEqual(Set(seen).count, seen.count, "node \(name): nothing twice")
            print("failover (node \(name)): \(n) published, \(acked.count) acknowledged, \(refused) answered 503, " +
                  "\(seen.filter { acked.contains($0) }.count) acknowledged delivered, \(acked.count - seen.filter { acked.contains($0) }.count) lost, " +
                  "\(seen.count - Set(seen).count) duplicated; publishes resumed \(String(format: "%.1f", recoveredAfter ?? -1)) s after the SIGKILL")
        }
    }
}
