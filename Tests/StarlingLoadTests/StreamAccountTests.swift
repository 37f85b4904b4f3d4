// The correctness accounting on its own: hand-made sequences with holes, repeats and
// late arrivals. (The same accounting against a real broker is in LoadAgainstBrokerTests.)
import StarlingLoadKit
import XCTest

final class StreamAccountTests: XCTestCase {
    func testInOrderStreamIsComplete() {
        var a = StreamAccount()
        for s in 0..<100 as Range<UInt64> { a.see(s) }
        XCTAssertTrue(a.isComplete(through: 100))
        XCTAssertEqual(a.lost(published: 100), 0)
        XCTAssertEqual(a.duplicates, 0)
        XCTAssertEqual(a.reordered, 0)
    }

    func testHoleIsLossAndTailIsLoss() {
        var a = StreamAccount()
        for s in [0, 1, 3, 4] as [UInt64] { a.see(s) }
        XCTAssertEqual(a.lost(published: 5), 1)
        XCTAssertEqual(a.lost(published: 7), 3, "5 and 6 never came either")
        XCTAssertEqual(a.lost(published: 7, failed: [2, 6]), 1, "refused publishes are not losses")
    }

    func testLateArrivalIsReorderingNotLoss() {
        var a = StreamAccount()
        for s in [0, 2, 1, 3] as [UInt64] { a.see(s) }
        XCTAssertEqual(a.reordered, 1)
        XCTAssertEqual(a.lost(published: 4), 0)
        XCTAssertEqual(a.duplicates, 0)
    }

    func testRepeatIsDuplicate() {
        var a = StreamAccount()
        for s in [0, 1, 1, 2, 0] as [UInt64] { a.see(s) }
        XCTAssertEqual(a.duplicates, 2)
        XCTAssertEqual(a.lost(published: 3), 0)
    }

    func testPayloadRoundTrip() {
        let text = Payload.make(seq: 42, sentNs: 123_456_789, size: 100)
        XCTAssertEqual(text.utf8.count, 100)
        let back = Payload.read(text)
        XCTAssertEqual(back?.seq, 42)
        XCTAssertEqual(back?.sentNs, 123_456_789)
        XCTAssertNil(Payload.read("{\"hello\":1}"))
    }

    func testTemplatesFillChannelAndPayload() {
        let t = Templates.nchan
        XCTAssertEqual(t.publishPath("a.b"), "/pub/a.b")
        XCTAssertEqual(t.subscribePath("a.b"), "/sub/a.b")
        XCTAssertEqual(Templates().bodyParts.0, "{\"data\":")
        XCTAssertEqual(Templates().bodyParts.1, "}")
    }
}
