// Resume by Last-Event-ID: exactly the events after the resume point, then live ones,
// with no duplicate and no gap; earliest; ?lastEventId=; a lost resume point → gap notice.
import StarlingClient
import StarlingCore
import XCTest

final class ReplayTests: XCTestCase {
    func testResumeFromFortiethGetsFortyOneToHundredThenLive() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let ids = try broker.publishNumbered(ch, count: 100)
            let s = try broker.client.subscribe(ch, lastEventID: ids[39])
            XCTAssertEqual(s.head.status, 200)
            let replayed = try s.next(60)
            XCTAssertEqual(replayed.map(\.data), (41...100).map { "e-\($0)" }, "[\(engine)]")
            XCTAssertEqual(replayed.map { $0.id! }, Array(ids[40...]))
            try broker.publishNumbered(ch, count: 5, from: 101)
            XCTAssertEqual(try s.next(5).map(\.data), (101...105).map { "e-\($0)" })
            XCTAssertNil(try s.next(timeout: 0.3), "no duplicate after the live events")
        }
    }

    func testQueryLastEventIdResumesAndHeaderWins() throws {
        try onEachEngine { broker, _ in
            let ch = uniqueChannel()
            let ids = try broker.publishNumbered(ch, count: 10)
            let q = try broker.client.subscribe(ch, query: "?lastEventId=\(ids[7])")
            XCTAssertEqual(try q.next(2).map(\.data), ["e-9", "e-10"])
            // Both present: the header (what a reconnecting EventSource sends) wins.
            let both = try broker.client.subscribe(ch, lastEventID: ids[8], query: "?lastEventId=\(ids[0])")
            XCTAssertEqual(try both.next(timeout: 2)?.data, "e-10")
            XCTAssertNil(try both.next(timeout: 0.3))
        }
    }

    func testEarliestReplaysAllRetainedAndAbsentIsLiveOnly() throws {
        try onEachEngine { broker, _ in
            let ch = uniqueChannel()
            try broker.publishNumbered(ch, count: 3)
            let all = try broker.client.subscribe(ch, lastEventID: "earliest")
            XCTAssertEqual(try all.next(3).map(\.data), ["e-1", "e-2", "e-3"])
            let live = try broker.client.subscribe(ch)
            XCTAssertNil(try live.next(timeout: 0.3), "no history without a resume point")
            try broker.publishNumbered(ch, count: 1, from: 4)
            XCTAssertEqual(try live.next()?.data, "e-4")
            XCTAssertEqual(try all.next()?.data, "e-4")
        }
    }

    func testResumePointOlderThanRetentionSendsGapFirst() throws {
        // Redis trims `MAXLEN ~` by whole stream nodes (100 entries), so publish enough
        // that the start of the channel is really gone on both engines.
        try onEachEngine(["--retain-events", "10"]) { broker, engine in
            let ch = uniqueChannel()
            let ids = try broker.publishNumbered(ch, count: 300, batch: 1)
            let s = try broker.client.subscribe(ch, lastEventID: ids[4])
            let gap = try XCTUnwrap(try s.next())
            XCTAssertEqual(gap.event, "starling.gap", "[\(engine)]")
            let info = try JSONParser.parse(Array(gap.data.utf8))
            XCTAssertEqual(info["channel"]?.stringValue, ch)
            XCTAssertEqual(info["requested"]?.stringValue, ids[4])
            var rest: [SSEMessage] = []
            while rest.last?.data != "e-300", let m = try s.next(timeout: 2) { rest.append(m) }
            XCTAssertFalse(rest.isEmpty)
            XCTAssertLessThan(rest.count, 295, "the start of the channel is gone")
            XCTAssertEqual(info["resumed_from"]?.stringValue, rest.first?.id)
            XCTAssertEqual(rest.last?.data, "e-300")
            XCTAssertEqual(rest.map(\.data), rest.map(\.data).sorted { Int($0.dropFirst(2))! < Int($1.dropFirst(2))! })
        }
    }

    func testResumeInsideRetentionSendsNoGap() throws {
        try onEachEngine(["--retain-events", "10"]) { broker, _ in
            let ch = uniqueChannel()
            let ids = try broker.publishNumbered(ch, count: 30, batch: 1)
            let s = try broker.client.subscribe(ch, lastEventID: ids[24])
            XCTAssertEqual(try s.next(5).map(\.data), (26...30).map { "e-\($0)" })
        }
    }

    func testExpiredByAgeResumePointSendsGap() throws {
        try onEachEngine(["--retain-seconds", "1"]) { broker, _ in
            let ch = uniqueChannel()
            let ids = try broker.publishNumbered(ch, count: 3)
            Thread.sleep(forTimeInterval: 1.6)
            let s = try broker.client.subscribe(ch, lastEventID: ids[0])
            XCTAssertEqual(try s.next(timeout: 2)?.event, "starling.gap")
        }
    }

    func testMalformedLastEventIDIsRefused() throws {
        try onEachEngine { broker, _ in
            let s = try broker.client.subscribe(uniqueChannel(), lastEventID: "not-an-id")
            XCTAssertEqual(s.head.status, 400)
        }
    }

    func testReplayOfLongHistoryIsPacedNotDisconnected() throws {
        // 5,000 events of ~1 KB is five times the client buffer: replay must page by the
        // queue's room instead of overflowing it.
        try onEachEngine(["--retain-events", "10000", "--client-buffer", "1048576"]) { broker, _ in
            let ch = uniqueChannel()
            let pad = String(repeating: "x", count: 1000)
            try broker.publishNumbered(ch, count: 5000, prefix: pad, batch: 500)
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            let got = try s.next(5000, timeout: 10)
            XCTAssertEqual(got.count, 5000)
            XCTAssertEqual(got.last?.data, "\(pad)-5000")
            XCTAssertEqual(try broker.metric("starling_slow_consumer_disconnects_total"), 0)
        }
    }
}
