// The stream lifecycle across two broker nodes on one Redis: a Stop on one node reaches
// a worker streaming into the other at once; a silent worker's lease ends the channel as
// abandoned exactly once, seen by subscribers on both nodes; a worker publishing straight
// into Redis gets the script's CANCELLED refusal.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class LifecycleNodeTests: XCTestCase {
    func twoNodes() throws -> (BrokerProcess, BrokerProcess) {
        let url = try BrokerProcess.redisURL()
        return (try BrokerProcess(["--redis", url]), try BrokerProcess(["--redis", url]))
    }

    func state(_ b: BrokerProcess, _ ch: String) throws -> String? {
        try JSONParser.parse(b.client.request("GET", "/v1/channels/\(ch)").body)["state"]?.stringValue
    }

    func testStopOnOneNodeReachesTheWorkerStreamingIntoTheOther() throws {
        let (a, b) = try twoNodes()
        defer { a.terminate(); b.terminate() }
        let ch = uniqueChannel("gen")
        let onA = try a.client.subscribe(ch)
        let onB = try b.client.subscribe(ch)
        let worker = try TokenWorker(port: a.port, channel: ch, everyMs: 10)
        defer { worker.stop() }
        XCTAssertEqual(try onB.next(5).count, 5, "tokens reach the other node")

        let stopper = try BlockingConnection(port: b.port)
        let t0 = Clock.now()
        try stopper.send(StarlingHTTPClient.format("POST", "/v1/channels/\(ch)/cancel", headers: [("Content-Type", "application/json")],
                                                   body: Array("{\"reason\":\"stop\"}".utf8)))
        let answer = try HTTPResponse.read(from: worker.connection, timeout: 3)
        let elapsed = Clock.now() - t0
        print("two nodes on Redis: Stop on B → worker's 409 on A: \(String(format: "%.1f", elapsed * 1000)) ms")
        XCTAssertEqual(try HTTPResponse.read(from: stopper).status, 200)
        XCTAssertEqual(answer.status, 409, answer.text)
        XCTAssertEqual((try? JSONParser.parse(answer.body))?["error"]?["code"]?.stringValue, "channel_cancelled")
        XCTAssertLessThan(elapsed, 0.050, "Stop reaches the worker on the other node within 50 ms")
        XCTAssertTrue(try worker.connection.waitForClose(timeout: 3))

        for s in [onA, onB] {
            let rest = try s.readToEnd(timeout: 3)
            XCTAssertEqual(rest.last?.event, "starling.cancelled")
            XCTAssertEqual(rest.filter { $0.event == "starling.cancelled" }.count, 1)
            XCTAssertTrue(s.connection.peerClosed)
        }
        XCTAssertEqual(try a.client.subscribe(ch).head.status, 204)
        XCTAssertEqual(try b.client.subscribe(ch).head.status, 204)
        let late = try a.client.publish(ch, json: "{\"data\":\"late\"}")
        XCTAssertEqual(late.status, 409)
        XCTAssertEqual((try? JSONParser.parse(late.body))?["error"]?["code"]?.stringValue, "channel_cancelled")
        XCTAssertEqual(try state(a, ch), "cancelled")
        XCTAssertEqual(try state(b, ch), "cancelled")
    }

    func testSilentWorkerEndsAbandonedOnceWithSubscribersOnTwoNodes() throws {
        let (a, b) = try twoNodes()
        defer { a.terminate(); b.terminate() }
        let ch = uniqueChannel("gen")
        let onA = try a.client.subscribe(ch)
        let onB = try b.client.subscribe(ch)
        let post = try ChunkedPublish(port: a.port, path: "/v1/channels/\(ch)/events", headers: [("Starling-Lease", "1")])
        try post.chunk("{\"event\":\"token\",\"data\":\"a\"}\n")
        XCTAssertEqual(try onB.next()?.data, "a")
        XCTAssertNil(try onB.next(timeout: 1.6), "held while the worker's connection is open")
        post.connection.shutdownWrite()  // the worker dies
        for s in [onA, onB] {
            let rest = try s.readToEnd(timeout: 3)
            XCTAssertEqual(rest.filter { $0.event != "token" }.map(\.event), ["starling.abandoned"])
        }
        let all = try b.client.subscribe(ch, lastEventID: "earliest").readToEnd(timeout: 2)
        XCTAssertEqual(all.map(\.event), ["token", "starling.abandoned"], "ended once across nodes and loops")
        XCTAssertEqual(try state(a, ch), "abandoned")
        XCTAssertEqual((try? JSONParser.parse(try b.client.publish(ch, json: "{\"data\":1}").body))?["error"]?["code"]?.stringValue,
                       "channel_abandoned")
    }

    func testWorkerPublishingStraightIntoRedisGetsTheStopAndTheLease() throws {
        let script = try String(contentsOf: repositoryRoot.appendingPathComponent("ops/redis/publish.lua"), encoding: .utf8)
        let sha = try sharedRedisCLI("SCRIPT", "LOAD", script)
        let url = try BrokerProcess.redisURL()
        let broker = try BrokerProcess(["--redis", url])
        defer { broker.terminate() }
        let ch = uniqueChannel("gen")
        let key = "starling:{\(ch)}"
        let s = try broker.client.subscribe(ch)
        let first = try sharedRedisCLI("EVALSHA", sha, "1", key, "lease", "60000", "1000", "3600", "token", "a", "text", "", "0", "", "")
        XCTAssertNotNil(EventID(first), first)
        XCTAssertEqual(try s.next()?.data, "a")
        XCTAssertEqual(try broker.client.request("POST", "/v1/channels/\(ch)/cancel").status, 200)
        let refused = try sharedRedisCLI("EVALSHA", sha, "1", key, "1000", "3600", "token", "b", "text", "", "0", "", "")
        XCTAssertTrue(refused.hasPrefix("CANCELLED starling:"), refused)
        XCTAssertEqual(try sharedRedisCLI("EXISTS", key + ":lease"), "0", "the lease goes with the end")
        XCTAssertEqual(try s.readToEnd(timeout: 3).map(\.event), ["starling.cancelled"])

        let bad = try sharedRedisCLI("EVALSHA", sha, "1", "starling:{\(uniqueChannel())}", "lease", "5", "1000", "3600",
                                     "token", "a", "text", "", "0", "", "")
        XCTAssertTrue(bad.hasPrefix("ERR starling:"), bad)
        let lapse = try sharedRedisCLI("EVALSHA", sha, "1", "starling:{\(uniqueChannel())}", "lapse", "1000", "3600")
        XCTAssertEqual(lapse, "", "no lease, nothing to end")
    }
}
