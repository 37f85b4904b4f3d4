// The in-memory tail of a watched channel (RedisTail.swift): replays it can answer read
// Redis once however many subscribers ask, and what it answers is exactly what Redis
// would: no event missed or repeated at its boundary with Redis history, the gap notice
// still sent for history Redis trimmed, and nothing served from memory after a Redis
// restart, a deleted stream or a lost notification made it doubtful.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class TailTests: XCTestCase {
    /// XRANGE calls Redis has run (also inside MULTI/EXEC), from INFO commandstats.
    private func xrangeCalls(_ redis: RedisServer) throws -> Int {
        let stats = try redis.cli("INFO", "commandstats")
        guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_xrange:") }) else { return 0 }
        let calls = line.split(separator: ",").first!.split(separator: "=").last!
        return Int(calls)!
    }

    /// Compares two event lists, reporting only the size and the first difference (lists of
    /// thousands of events are unreadable in a failure message).
    private func assertSame(_ got: [String], _ want: [String], _ what: String = "", file: StaticString = #filePath, line: UInt = #line) {
        guard got != want else { return }
        let k = (0..<min(got.count, want.count)).first(where: { got[$0] != want[$0] }) ?? min(got.count, want.count)
        XCTFail("\(what): got \(got.count) events, want \(want.count); first difference at [\(k)]: "
                + "\(k < got.count ? got[k] : "end") vs \(k < want.count ? want[k] : "end")", file: file, line: line)
    }

    private func gapNotice(_ s: SSEStream, file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue? {
        guard let first = try s.next() else { XCTFail("stream ended", file: file, line: line); return nil }
        XCTAssertEqual(first.event, "starling.gap", "the gap notice comes first", file: file, line: line)
        return try JSONParser.parse(Array(first.data.utf8))
    }

    func testConcurrentReplaysOfOneChannelReadRedisOnce() throws {
        let redis = try RedisServer(appendOnly: false)
        let broker = try BrokerProcess(["--redis", redis.url, "--retain-events", "100000"])
        defer { broker.terminate() }
        let ch = uniqueChannel("many")
        try broker.publish(ch, 1...3000, batch: 100)
        // A live subscriber keeps the channel watched (the tail lives as long as the watch).
        let live = try broker.client.subscribe(ch)
        let before = try xrangeCalls(redis)
        // 3,000 events are three replay pages each: 10 replays read them from Redis 30+
        // times without the tail.
        let replays = try (0..<10).map { _ in try broker.client.subscribe(ch, lastEventID: "earliest") }
        for s in replays { assertSame(try readInOrder(s, count: 3000), numbered(1...3000)) }
        let reads = try xrangeCalls(redis) - before
        // Without the tail: 4 reads per replay (3 pages and the end), 40 in all. With it: one
        // load of the history, at most one end-of-history confirmation per replay, and the
        // watch's own fills (after its baseline, and the periodic check).
        XCTAssertLessThanOrEqual(reads, 20, "the replays were answered from the tail")
        // Live events still arrive, and the next replay has them too.
        try broker.publish(ch, 3001...3002)
        assertSame(try readInOrder(live, count: 2), numbered(3001...3002))
        let late = try broker.client.subscribe(ch, lastEventID: "earliest")
        assertSame(try readInOrder(late, count: 3002), numbered(1...3002))
    }

    func testReplayFromTailIsExactAtItsBoundaryWithRedisHistory() throws {
        let broker = try BrokerProcess(["--redis", try BrokerProcess.redisURL(), "--retain-events", "100000"])
        defer { broker.terminate() }
        let ch = uniqueChannel("boundary")
        // 1 … 1500 only in Redis; 1501 … 1600 arrive while the channel is watched (the tail
        // takes them from the notifications, after the baseline 1500).
        var ids = try broker.publish(ch, 1...1500, batch: 100)
        let live = try broker.client.subscribe(ch)
        usleep(300_000)
        ids += try broker.publish(ch, 1501...1600, batch: 10)
        assertSame(try readInOrder(live, count: 100), numbered(1501...1600))
        // Resume points before, at and inside the tail, and at its end: each gets exactly
        // the events after it, no gap notice, no duplicate (readInOrder fails on those).
        for k in [0, 99, 1023, 1024, 1498, 1499, 1500, 1550, 1598] {
            let s = try broker.client.subscribe(ch, lastEventID: ids[k])
            assertSame(try readInOrder(s, count: 1599 - k), numbered((k + 2)...1600), "after event \(k + 1)")
        }
        let atEnd = try broker.client.subscribe(ch, lastEventID: ids[1599])
        XCTAssertNil(try atEnd.next(timeout: 0.5), "nothing after the newest event")
        // The tail goes on past its end with what is published next.
        try broker.publish(ch, 1601...1603)
        assertSame(try readInOrder(atEnd, count: 3), numbered(1601...1603))
        let s = try broker.client.subscribe(ch, lastEventID: ids[1590])
        assertSame(try readInOrder(s, count: 12), numbered(1592...1603))
    }

    func testGapIsStillReportedAfterTrimmingWhileWatched() throws {
        let broker = try BrokerProcess(["--redis", try BrokerProcess.redisURL(), "--retain-events", "10"])
        defer { broker.terminate() }
        let ch = uniqueChannel("trimmed")
        let live = try broker.client.subscribe(ch)
        usleep(300_000)
        // MAXLEN ~ trims whole nodes of 100 entries: publish enough that some go.
        let ids = try broker.publish(ch, 1...400, batch: 10)
        XCTAssertEqual(try readInOrder(live, count: 400).count, 400)
        let kept = try XCTUnwrap(try sharedRedisCLI("XRANGE", "starling:{\(ch)}", "-", "+", "COUNT", "1").split(separator: "\n").first.map(String.init))
        XCTAssertNotEqual(kept, ids[0], "the stream was trimmed")
        let k = try XCTUnwrap(ids.firstIndex(of: kept))
        for _ in 0..<2 {  // the second time, the first replay's read may have filled the tail
            let s = try broker.client.subscribe(ch, lastEventID: ids[4])
            let info = try XCTUnwrap(try gapNotice(s))
            XCTAssertEqual(info["requested"]?.stringValue, ids[4])
            XCTAssertEqual(info["resumed_from"]?.stringValue, kept)
            assertSame(try readInOrder(s, count: 400 - k), numbered((k + 1)...400))
        }
        // Inside the retained count: no gap, from the tail.
        let recent = try broker.client.subscribe(ch, lastEventID: ids[394])
        assertSame(try readInOrder(recent, count: 5), numbered(396...400))
    }

    func testTailIsNotTrustedAfterRedisRestartedEmpty() throws {
        let redis = try RedisServer(appendOnly: false)
        let broker = try BrokerProcess(["--redis", redis.url])
        defer { broker.terminate() }
        let ch = uniqueChannel("restart")
        let live = try broker.client.subscribe(ch)
        usleep(300_000)
        let ids = try broker.publish(ch, 1...5)
        assertSame(try readInOrder(live, count: 5), numbered(1...5))
        // Served from the tail while Redis has it.
        let before = try broker.client.subscribe(ch, lastEventID: ids[2])
        assertSame(try readInOrder(before, count: 2), numbered(4...5))
        redis.kill()
        try redis.start()
        try broker.waitReady(200)
        // Redis lost 1 … 5: the broker still held 4 and 5 in memory, but says the history is gone.
        let s = try broker.client.subscribe(ch, lastEventID: ids[2])
        let info = try XCTUnwrap(try gapNotice(s))
        XCTAssertEqual(info["requested"]?.stringValue, ids[2])
        XCTAssertEqual(info["resumed_from"], .null)
    }

    func testTailIsNotTrustedAfterStreamDeletedAndRecreatedWhileWatched() throws {
        let broker = try BrokerProcess(["--redis", try BrokerProcess.redisURL()])
        defer { broker.terminate() }
        let ch = uniqueChannel("recreated")
        let live = try broker.client.subscribe(ch)
        usleep(300_000)
        let old = try broker.publish(ch, 1...5)
        assertSame(try readInOrder(live, count: 5), numbered(1...5))
        _ = try sharedRedisCLI("DEL", "starling:{\(ch)}")
        let new = try broker.publish(ch, 6...8)
        assertSame(try readInOrder(live, count: 3), numbered(6...8))
        let s = try broker.client.subscribe(ch, lastEventID: old[2])
        let info = try XCTUnwrap(try gapNotice(s))
        XCTAssertEqual(info["requested"]?.stringValue, old[2])
        XCTAssertEqual(info["resumed_from"]?.stringValue, new[0])
        assertSame(try readInOrder(s, count: 3), numbered(6...8))
    }
}
