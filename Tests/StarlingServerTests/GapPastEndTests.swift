// A resume point past the channel's newest ID means history the store no longer has (a
// restarted memory engine, a recreated stream): `starling.gap` naming it comes first,
// then every live event, even those whose IDs sort below the lost point (SPEC §4).
import StarlingClient
import StarlingCore
import XCTest

final class GapPastEndTests: XCTestCase {
    func testResumePastTheLastIDGetsGapThenLiveEvents() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel("past")
            let last = EventID(try broker.client.publish(ch, data: "old"))!
            // An ID well past anything the channel made (an hour ahead of its last).
            let ahead = EventID(ms: last.ms + 3_600_000, seq: 0)
            let s = try broker.client.subscribe(ch, lastEventID: ahead.description)
            XCTAssertEqual(s.head.status, 200)
            let first = try XCTUnwrap(try s.next(), "[\(engine)]")
            XCTAssertEqual(first.event, "starling.gap", "[\(engine)] the gap comes first")
            let gap = try JSONParser.parse(Array(first.data.utf8))
            XCTAssertEqual(gap["channel"]?.stringValue, ch)
            XCTAssertEqual(gap["requested"]?.stringValue, ahead.description, "[\(engine)] \(first.data)")
            // New events sort below the lost point; they are delivered all the same.
            try broker.client.publish(ch, data: "new-1")
            try broker.client.publish(ch, data: "new-2")
            XCTAssertEqual(try s.next(2).map(\.data), ["new-1", "new-2"], "[\(engine)]")
        }
    }

    func testResumeAtTheLastIDGetsNoGap() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel("past")
            let last = try broker.client.publish(ch, data: "old")
            let s = try broker.client.subscribe(ch, lastEventID: last)
            try broker.client.publish(ch, data: "new")
            let m = try XCTUnwrap(try s.next(), "[\(engine)]")
            XCTAssertEqual(m.event, "message", "[\(engine)] no gap at the channel's end: \(m.data)")
            XCTAssertEqual(m.data, "new")
        }
    }

    func testResumeAfterAMemoryEngineRestartGetsGapFirst() throws {
        var broker = try BrokerProcess()
        let ch = uniqueChannel("restart")
        let ids = try broker.publishNumbered(ch, count: 5)
        broker.terminate()
        broker = try BrokerProcess()
        defer { broker.terminate() }
        // On a channel the new process does not have: the gap, then live events.
        let s = try broker.client.subscribe(ch, lastEventID: ids[2])
        XCTAssertEqual(s.head.status, 200)
        let first = try XCTUnwrap(try s.next())
        XCTAssertEqual(first.event, "starling.gap", "what the old process held is gone: \(first.data)")
        XCTAssertEqual(try JSONParser.parse(Array(first.data.utf8))["requested"]?.stringValue, ids[2])
        try broker.client.publish(ch, data: "after restart")
        XCTAssertEqual(try s.next()?.data, "after restart")
        // On the channel once the new process has events of it: the gap, then those events.
        let late = try broker.client.subscribe(ch, lastEventID: ids[4])
        let notice = try XCTUnwrap(try late.next())
        XCTAssertEqual(notice.event, "starling.gap", notice.data)
        XCTAssertEqual(try JSONParser.parse(Array(notice.data.utf8))["requested"]?.stringValue, ids[4])
        XCTAssertEqual(try late.next()?.data, "after restart")
    }
}
