// Lost history is reported with starling.gap, never passed over: a stream trimmed past
// the resume point, deleted and recreated, expired, or lost by a Redis restarted without
// persistence. A resume point inside retained history gives no gap.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class GapTests: XCTestCase {
    private func gapNotice(_ s: SSEStream, file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue? {
        guard let first = try s.next() else { XCTFail("stream ended", file: file, line: line); return nil }
        XCTAssertEqual(first.event, "starling.gap", "the gap notice comes first", file: file, line: line)
        return try JSONParser.parse(Array(first.data.utf8))
    }

    func testResumeAfterTrimSendsGapEvent() throws {
        let broker = try BrokerProcess(["--redis", try BrokerProcess.redisURL(), "--retain-events", "10"])
        defer { broker.terminate() }
        let ch = uniqueChannel("trim")
        // MAXLEN ~ trims whole nodes of 100 entries: publish enough that some go.
        let ids = try broker.publish(ch, 1...400, batch: 10)
        let firstKept = try sharedRedisCLI("XRANGE", "starling:{\(ch)}", "-", "+", "COUNT", "1").split(separator: "\n").first.map(String.init)
        let kept = try XCTUnwrap(firstKept)
        XCTAssertNotEqual(kept, ids[0], "the stream was trimmed")
        let s = try broker.client.subscribe(ch, lastEventID: ids[4])
        let info = try XCTUnwrap(try gapNotice(s))
        XCTAssertEqual(info["channel"]?.stringValue, ch)
        XCTAssertEqual(info["requested"]?.stringValue, ids[4])
        XCTAssertEqual(info["resumed_from"]?.stringValue, kept)
        let k = try XCTUnwrap(ids.firstIndex(of: kept))
        XCTAssertEqual(try readInOrder(s, count: 400 - k), numbered((k + 1)...400))
    }

    func testResumeInsideRetainedHistoryHasNoGap() throws {
        let broker = try BrokerProcess(["--redis", try BrokerProcess.redisURL(), "--retain-events", "10"])
        defer { broker.terminate() }
        let ch = uniqueChannel("kept")
        let ids = try broker.publish(ch, 1...400, batch: 10)
        let s = try broker.client.subscribe(ch, lastEventID: ids[389])
        XCTAssertEqual(try readInOrder(s, count: 10), numbered(391...400))
        // The newest ID itself, and the oldest kept entry's ID: nothing lost after either.
        let atEnd = try broker.client.subscribe(ch, lastEventID: ids[399])
        XCTAssertNil(try atEnd.next(timeout: 0.5))
        let kept = try XCTUnwrap(try sharedRedisCLI("XRANGE", "starling:{\(ch)}", "-", "+", "COUNT", "1").split(separator: "\n").first.map(String.init))
        let k = try XCTUnwrap(ids.firstIndex(of: kept))
        let fromOldest = try broker.client.subscribe(ch, lastEventID: kept)
        XCTAssertEqual(try fromOldest.next()?.data, "e-\(k + 2)")
    }

    func testResumeIntoDeletedAndRecreatedStreamSendsGap() throws {
        let broker = try BrokerProcess(["--redis", try BrokerProcess.redisURL()])
        defer { broker.terminate() }
        let ch = uniqueChannel("recreated")
        let old = try broker.publish(ch, 1...5)
        _ = try sharedRedisCLI("DEL", "starling:{\(ch)}")
        let new = try broker.publish(ch, 6...8)
        let s = try broker.client.subscribe(ch, lastEventID: old[2])
        let info = try XCTUnwrap(try gapNotice(s))
        XCTAssertEqual(info["requested"]?.stringValue, old[2])
        XCTAssertEqual(info["resumed_from"]?.stringValue, new[0])
        XCTAssertEqual(try readInOrder(s, count: 3), numbered(6...8))
        // Deleted and not recreated: the gap notice, then live events.
        let gone = uniqueChannel("deleted")
        let goneIDs = try broker.publish(gone, 1...3)
        _ = try sharedRedisCLI("DEL", "starling:{\(gone)}")
        let g = try broker.client.subscribe(gone, lastEventID: goneIDs[0])
        let notice = try XCTUnwrap(try gapNotice(g))
        XCTAssertEqual(notice["resumed_from"], .null)
        try broker.publish(gone, 4...4)
        XCTAssertEqual(try readInOrder(g, count: 1), ["e-4"])
    }

    func testResumeAfterStreamExpiredSendsGap() throws {
        let broker = try BrokerProcess(["--redis", try BrokerProcess.redisURL(), "--retain-seconds", "1"])
        defer { broker.terminate() }
        let ch = uniqueChannel("expired")
        let ids = try broker.publish(ch, 1...3)
        usleep(1_300_000)
        XCTAssertEqual(try sharedRedisCLI("EXISTS", "starling:{\(ch)}"), "0", "the key expired")
        let s = try broker.client.subscribe(ch, lastEventID: ids[1])
        let info = try XCTUnwrap(try gapNotice(s))
        XCTAssertEqual(info["requested"]?.stringValue, ids[1])
    }

    func testRedisRestartedWithoutPersistenceSendsGap() throws {
        let redis = try RedisServer(appendOnly: false)
        let broker = try BrokerProcess(["--redis", redis.url])
        defer { broker.terminate() }
        let ch = uniqueChannel("amnesia")
        let ids = try broker.publish(ch, 1...5)
        redis.kill()
        try redis.start()
        try broker.waitReady(200)
        let s = try broker.client.subscribe(ch, lastEventID: ids[2])
        let info = try XCTUnwrap(try gapNotice(s))
        XCTAssertEqual(info["requested"]?.stringValue, ids[2])
        XCTAssertEqual(info["resumed_from"], .null)
        // New history after the restart: still a gap for the old resume point.
        let fresh = try broker.publish(ch, 6...7)
        XCTAssertEqual(try readInOrder(s, count: 2), numbered(6...7))
        let again = try broker.client.subscribe(ch, lastEventID: ids[4])
        let notice = try XCTUnwrap(try gapNotice(again))
        XCTAssertEqual(notice["resumed_from"]?.stringValue, fresh[0])
    }
}
