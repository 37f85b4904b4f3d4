// Redis connection loss: reconnect, re-subscribe, fill every watched channel from its
// stream; 503 while Redis is down. Each test runs its own redis-server, which it kills.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class OutageTests: XCTestCase {
    func testRedisRestartWithAOFLosesNothingAndPublishDuringOutageGets503() throws {
        let redis = try RedisServer(appendOnly: true)
        let broker = try BrokerProcess(["--redis", redis.url])
        defer { broker.terminate() }
        let ch = uniqueChannel("restart")
        let s = try broker.client.subscribe(ch)
        let ids = try broker.publish(ch, 1...40, batch: 4)
        XCTAssertEqual(try readInOrder(s, count: 40), numbered(1...40))

        redis.kill()
        try broker.waitReady(503)
        let refused = try broker.client.publish(ch, json: "{\"data\":\"during\"}")
        XCTAssertEqual(refused.status, 503, "never 200 for an event Redis did not store")
        XCTAssertEqual(refused.header("retry-after"), "1")

        try redis.start()
        try broker.waitReady(200)
        try broker.publish(ch, 41...80, batch: 4)
        XCTAssertEqual(try readInOrder(s, count: 40), numbered(41...80))
        XCTAssertNil(try s.next(timeout: 0.7), "nothing twice")

        // History survived the restart (AOF): a resume inside it has no gap.
        let resumed = try broker.client.subscribe(ch, lastEventID: ids[19])
        XCTAssertEqual(try readInOrder(resumed, count: 60), numbered(21...80))
    }

    /// SCRIPT FLUSH (or a Redis that lost its script cache) answers EVALSHA with NOSCRIPT:
    /// the broker sends the same command again as EVAL with the script's text (RedisCommand
    /// .replacingHead), every argument after the head kept byte for byte: a batch with a
    /// producer, an event name and JSON data is stored once and delivered exactly.
    func testFlushedScriptCacheIsReloadedByEvalAndThePublishIsStoredExactly() throws {
        let redis = try RedisServer(appendOnly: false)
        let broker = try BrokerProcess(["--redis", redis.url])
        defer { broker.terminate() }
        let ch = uniqueChannel("noscript")
        let s = try broker.client.subscribe(ch)
        try broker.publish(ch, 1...2)
        XCTAssertEqual(try readInOrder(s, count: 2), numbered(1...2))

        _ = try redis.cli("SCRIPT", "FLUSH")
        let body = "[{\"producer\":\"p\",\"seq\":7,\"event\":\"tok.en\",\"data\":{\"n\":3}},{\"producer\":\"p\",\"seq\":8,\"data\":\"e-4\"}]"
        let r = try broker.client.publish(ch, json: body)
        XCTAssertEqual(r.status, 200, r.text)
        let first = try XCTUnwrap(s.next(timeout: 10))
        XCTAssertEqual(first.event, "tok.en")
        XCTAssertEqual(first.data, "{\"n\":3}")
        XCTAssertEqual(try readInOrder(s, count: 1), ["e-4"])
        // The script is cached again (EVAL loads it): a repeat of seq 8 is a duplicate,
        // not a second copy, and the next seq is stored.
        let again = try broker.client.publish(ch, json: "{\"producer\":\"p\",\"seq\":8,\"data\":\"e-4\"}")
        XCTAssertEqual(again.status, 200, again.text)
        XCTAssertEqual(try JSONParser.parse(again.body)["duplicates"], .number("1"), again.text)
        try broker.publish(ch, 5...6)
        XCTAssertEqual(try readInOrder(s, count: 2), numbered(5...6))
        XCTAssertNil(try s.next(timeout: 0.5), "nothing twice")
    }

    func testEventsPublishedWhileRedisDownElsewhereAreFilledAfterReconnect() throws {
        // Node B loses Redis (its connections are killed); node A keeps publishing.
        let redis = try RedisServer(appendOnly: false)
        let a = try BrokerProcess(["--redis", redis.url])
        defer { a.terminate() }
        let b = try BrokerProcess(["--redis", redis.url])
        defer { b.terminate() }
        let ch = uniqueChannel("fill")
        let onB = try b.client.subscribe(ch)
        try a.publish(ch, 1...20)
        XCTAssertEqual(try readInOrder(onB, count: 20), numbered(1...20))
        // Kill every normal and pub/sub client: both nodes reconnect; events published
        // by A right after, while B resubscribes, must still reach B.
        _ = try redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        _ = try redis.cli("CLIENT", "KILL", "TYPE", "normal")
        var published = 0
        var n = 21
        let deadline = Date().addingTimeInterval(10)
        while published < 40, Date() < deadline {
            let r = try a.client.publish(ch, json: "{\"data\":\"e-\(n)\"}")
            if r.status == 200 { published += 1; n += 1 } else { XCTAssertEqual(r.status, 503); usleep(20_000) }
        }
        XCTAssertEqual(try readInOrder(onB, count: 40), numbered(21...60))
        XCTAssertNil(try onB.next(timeout: 0.7))
    }

    func testPubSubConnectionKilledMidStreamLosesNothing() throws {
        let redis = try RedisServer(appendOnly: false)
        let broker = try BrokerProcess(["--redis", redis.url])
        defer { broker.terminate() }
        let ch = uniqueChannel("pubsub")
        let s = try broker.client.subscribe(ch)
        let other = try broker.client.subscribe(ch, lastEventID: "earliest")
        try broker.publish(ch, 1...30, batch: 3)
        _ = try redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        // Published at once: their notifications go out before the node has resubscribed.
        try broker.publish(ch, 31...60, batch: 3)
        XCTAssertEqual(try readInOrder(s, count: 60), numbered(1...60))
        XCTAssertEqual(try readInOrder(other, count: 60), numbered(1...60))
        XCTAssertNil(try s.next(timeout: 0.7), "nothing twice")
    }

    func testNotificationDroppedBetweenTwoPublishesIsFilledFromStream() throws {
        let redis = try RedisServer(appendOnly: false)
        let broker = try BrokerProcess(["--redis", redis.url])
        defer { broker.terminate() }
        let ch = uniqueChannel("dropped")
        let s = try broker.client.subscribe(ch)
        try broker.publish(ch, 1...1)
        XCTAssertEqual(try readInOrder(s, count: 1), ["e-1"])
        // A notification lost on the way: the entry is in the stream, no PUBLISH announced it.
        _ = try redis.cli("XADD", "starling:{\(ch)}", "*", "e", "message", "d", "e-2", "k", "text")
        try broker.publish(ch, 3...3)
        XCTAssertEqual(try readInOrder(s, count: 2, timeout: 3), ["e-2", "e-3"])
        // And the pub/sub connection killed between two publishes.
        _ = try redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        try broker.publish(ch, 4...4)
        try broker.publish(ch, 5...5)
        XCTAssertEqual(try readInOrder(s, count: 2, timeout: 3), ["e-4", "e-5"])
        // A quiet channel whose last notification was lost: the periodic check fills it.
        _ = try redis.cli("XADD", "starling:{\(ch)}", "*", "e", "message", "d", "e-6", "k", "text")
        XCTAssertEqual(try readInOrder(s, count: 1, timeout: 3), ["e-6"])
        XCTAssertNil(try s.next(timeout: 0.7), "nothing twice")
    }
    /// The periodic check reads only quiet channels: 40 channels each published to every
    /// 100 ms (each tick sees a notification chain onto what was delivered) cost no XRANGE
    /// beyond their first fills; once quiet, a channel is read at ticks 1, 2, 4, 8, … apart
    /// (at most 4), not at every tick; and a notification lost then still arrives.
    func testPeriodicCheckReadsOnlyQuietChannelsAndBacksOff() throws {
        let redis = try RedisServer(appendOnly: false)
        let broker = try BrokerProcess(["--redis", redis.url])
        defer { broker.terminate() }
        let channels = (0..<40).map { uniqueChannel("quiet-\($0)") }
        let streams = try channels.map { try broker.client.subscribe($0) }
        func xranges() throws -> Int {
            let stats = try redis.cli("INFO", "commandstats")
            guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_xrange:") }),
                  let calls = line.split(separator: ",").first?.split(separator: "=").last, let n = Int(calls) else { return 0 }
            return n
        }
        for ch in channels { try broker.publish(ch, 0...0) }
        usleep(1_200_000)  // first fills and the checks of a fresh watch are behind us
        var before = 0
        for round in 1...25 {  // every channel every 100 ms; counted over the last 2 s (4 ticks)
            if round == 6 { before = try xranges() }
            for ch in channels { try broker.publish(ch, round...round) }
            usleep(100_000)
        }
        let active = try xranges() - before
        XCTAssertLessThan(active, 10, "active channels are current by their notifications: \(active) XRANGE for 40 channels over 4 ticks")
        for s in streams { XCTAssertEqual(try readInOrder(s, count: 26), numbered(0...25)) }

        let quietStart = try xranges()
        usleep(4_000_000)  // 8 ticks quiet: read at ticks 1, 2, 4 (then every 4): about 3-4 reads each, not 8
        let quiet = try xranges() - quietStart
        XCTAssertGreaterThanOrEqual(quiet, 40, "a quiet channel is still checked")
        XCTAssertLessThanOrEqual(quiet, 40 * 5, "quiet channels are read less often than every tick: \(quiet) XRANGE")
        // A notification lost on a quiet channel still arrives, within the longest interval.
        _ = try redis.cli("XADD", "starling:{\(channels[0])}", "*", "e", "message", "d", "lost", "k", "text")
        XCTAssertEqual(try streams[0].next(timeout: 3)?.data, "lost")
        print("periodic check: \(active) XRANGE for 40 active channels over 2 s (was 160: every channel every tick), \(quiet) for them quiet over 4 s (was 320)")
    }
}
