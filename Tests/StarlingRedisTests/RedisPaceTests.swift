// --redis-pace (1 ms by default): the publishes that reach one Redis sooner than the pace
// after the last call wait and leave together in the next call; each keeps its own answer
// and its order, a publish after a quiet spell leaves at once, a client that waits on each
// answer is not held, and any other command (a Stop) takes the waiting publishes along
// ahead of it. Counted on a Redis of this test alone (INFO
// commandstats), so no other test's calls mix in. One loop (`--threads 1`): each loop paces
// its own calls, and publishes not yet answered on two loops have no order between them.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class RedisPaceTests: XCTestCase {
    private func publishRequest(_ channel: String, _ data: String) -> String {
        let body = "{\"data\":\"\(data)\"}"
        return "POST /v1/channels/\(channel)/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    private func scriptCalls(_ redis: RedisServer) throws -> Int {
        let stats = try redis.cli("INFO", "commandstats")
        guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_evalsha:calls=") }) else { return 0 }
        return Int(line.dropFirst("cmdstat_evalsha:calls=".count).prefix(while: \.isNumber)) ?? -1
    }

    /// One publish, then ten more from ten connections 8 ms apart (each in its own loop turn):
    /// the script calls they took, the answers (all 200, IDs rising) and what a subscriber got.
    private func publishSpread(_ flags: [String], _ redis: RedisServer) throws -> Int {
        let broker = try BrokerProcess(["--redis", redis.url, "--threads", "1"] + flags)
        defer { broker.terminate() }
        let ch = uniqueChannel("pace")
        let s = try broker.client.subscribe(ch)
        XCTAssertFalse(try broker.client.publish(ch, data: "first").isEmpty)
        let before = try scriptCalls(redis)
        let connections = try (0..<10).map { _ in try BlockingConnection(port: broker.port) }
        for (k, c) in connections.enumerated() {
            try c.send(publishRequest(ch, "e-\(k)"))
            usleep(8_000)
        }
        var ids: [EventID] = []
        for (k, c) in connections.enumerated() {
            let r = try HTTPResponse.read(from: c, timeout: 10)
            XCTAssertEqual(r.status, 200, "publish \(k): \(r.text)")
            ids.append(try XCTUnwrap(EventID(try XCTUnwrap(try JSONParser.parse(Array(r.text.utf8))["first"]?.stringValue))))
        }
        XCTAssertEqual(ids, ids.sorted(), "IDs rise in the order the publishes arrived")
        XCTAssertEqual(Set(ids).count, 10)
        let got = try s.next(11, timeout: 10)
        XCTAssertEqual(got.map(\.data), ["first"] + (0..<10).map { "e-\($0)" })
        XCTAssertEqual(got.dropFirst().map(\.id), ids.map { "\($0)" })
        return try scriptCalls(redis) - before
    }

    func testPublishesWithinThePaceShareOneCall() throws {
        let redis = try RedisServer(appendOnly: false)
        // Without a pace each publish, alone in its turn, is its own call (a stalled machine
        // may put two in one turn, hence not exactly 10).
        let unpaced = try publishSpread(["--redis-pace", "0"], redis)
        XCTAssertGreaterThanOrEqual(unpaced, 7, "without --redis-pace: \(unpaced) calls for 10 publishes")
        // With a pace of 100 ms the 10 publishes, 72 ms from first to last, leave in at most
        // 3 calls: one when the pace since "first" is up, one for those after it, and one
        // more should the watched channel's periodic read (any other command takes the
        // waiting publishes along) fall in between.
        let paced = try publishSpread(["--redis-pace", "100ms"], redis)
        XCTAssertGreaterThanOrEqual(paced, 1)
        XCTAssertLessThanOrEqual(paced, 3, "with --redis-pace 100ms: \(paced) calls for 10 publishes")
    }

    /// A client that sends each publish once the previous one is answered, on one keep-alive
    /// connection, waits on us: its publishes leave at once, not a pace apart. (Held, 10 of
    /// them would take at least 0.9 s at a 100 ms pace; a mutation that ignores `expedite`
    /// fails here.)
    func testAClientWaitingOnEachAnswerIsNotHeld() throws {
        let redis = try RedisServer(appendOnly: false)
        let broker = try BrokerProcess(["--redis", redis.url, "--threads", "1", "--redis-pace", "100ms"])
        defer { broker.terminate() }
        let ch = uniqueChannel("pace-wait")
        let c = try BlockingConnection(port: broker.port)
        try c.send(publishRequest(ch, "warm-up"))  // its answer starts the connection's record
        XCTAssertEqual(try HTTPResponse.read(from: c, timeout: 10).status, 200)
        let start = Date()
        for k in 0..<10 {
            try c.send(publishRequest(ch, "e-\(k)"))
            XCTAssertEqual(try HTTPResponse.read(from: c, timeout: 10).status, 200, "publish \(k)")
        }
        let seconds = Date().timeIntervalSince(start)
        XCTAssertLessThan(seconds, 0.5, "10 publishes, each after the previous answer, took \(seconds) s at a 100 ms pace")
        let events = try broker.client.subscribe(ch, lastEventID: "earliest").next(11, timeout: 10)
        XCTAssertEqual(events.map(\.data), ["warm-up"] + (0..<10).map { "e-\($0)" })
    }

    /// Publishes waiting for the pace, then a Stop of their channel on another connection: the
    /// Stop's command takes them along first, so the channel ends after them.
    func testAStopTakesTheWaitingPublishesAheadOfIt() throws {
        let redis = try RedisServer(appendOnly: false)
        let broker = try BrokerProcess(["--redis", redis.url, "--threads", "1", "--redis-pace", "100ms"])
        defer { broker.terminate() }
        let ch = uniqueChannel("pace-stop")
        XCTAssertFalse(try broker.client.publish(ch, data: "first").isEmpty)  // the pace starts now
        let publisher = try BlockingConnection(port: broker.port)
        try publisher.send(publishRequest(ch, "held-1") + publishRequest(ch, "held-2"))
        usleep(10_000)
        let stop = try broker.client.request("POST", "/v1/channels/\(ch)/cancel", body: Array("{\"reason\":\"user\"}".utf8))
        XCTAssertEqual(stop.status, 200, stop.text)
        XCTAssertEqual(try HTTPResponse.read(from: publisher, timeout: 10).status, 200)
        XCTAssertEqual(try HTTPResponse.read(from: publisher, timeout: 10).status, 200)
        let events = try broker.client.subscribe(ch, lastEventID: "0").readToEnd(timeout: 5)
        XCTAssertEqual(events.map(\.data).prefix(3), ["first", "held-1", "held-2"])
        XCTAssertEqual(events.map(\.event), ["message", "message", "message", "starling.cancelled"])
    }
}
