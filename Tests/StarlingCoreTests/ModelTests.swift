import StarlingCore
import XCTest

final class ModelTests: XCTestCase {
    func testEventIDParsesOrdersAndAdvances() {
        XCTAssertEqual(EventID("12-3"), EventID(ms: 12, seq: 3))
        XCTAssertEqual(EventID("12"), EventID(ms: 12, seq: 0))
        for bad in ["", "-1", "1-", "a-1", "1-2-3", "1 -2", "99999999999999999999999-0"] { XCTAssertNil(EventID(bad), bad) }
        XCTAssertLessThan(EventID(ms: 1, seq: 9), EventID(ms: 2, seq: 0))
        XCTAssertEqual(EventID.next(after: EventID(ms: 5, seq: 1), nowMs: 5), EventID(ms: 5, seq: 2))
        XCTAssertEqual(EventID.next(after: EventID(ms: 5, seq: 1), nowMs: 3), EventID(ms: 5, seq: 2), "a clock going back never reorders")
        XCTAssertEqual(EventID.next(after: EventID(ms: 5, seq: 1), nowMs: 9), EventID(ms: 9, seq: 0))
    }

    func testNames() {
        XCTAssertTrue(Names.isValidChannel("a.b_c:d@e-f9"))
        XCTAssertFalse(Names.isValidChannel(""))
        XCTAssertFalse(Names.isValidChannel("a b"))
        XCTAssertFalse(Names.isValidChannel(String(repeating: "x", count: 201)))
        XCTAssertTrue(Names.isValidEventName("token.delta:v1"))
        XCTAssertFalse(Names.isValidEventName("a@b"))
        XCTAssertTrue(Names.isValidChannel(String(repeating: "x", count: 200)))
        XCTAssertTrue(Names.isValidEventName(String(repeating: "e", count: 64)))
        XCTAssertFalse(Names.isValidEventName(String(repeating: "e", count: 65)))
        XCTAssertFalse(Names.isValidEventName(""))
        XCTAssertTrue(Names.isReserved("starling.gap"))
    }

    /// The byte sets are bit masks: every one of the 256 bytes, alone and inside a name,
    /// against SPEC §3's classes written out.
    func testNameByteSetsMatchTheSpecClasses() {
        for c in 0...255 {
            let b = UInt8(c)
            let alnum = (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c)
            let event = alnum || ".-_:".utf8.contains(b)
            let channel = event || b == 0x40
            [0x61, b, 0x62].withUnsafeBufferPointer { name in
                XCTAssertEqual(Names.isValidEventName(name), event, "event name byte \(c)")
                XCTAssertEqual(Names.isValidChannel(name), channel, "channel byte \(c)")
            }
        }
    }

    func testBatchIsCheckedWholeAndNamesTheBadIndex() {
        let body = Array(#"[{"data":"a"},{"data":1,"final":"yes"}]"#.utf8)
        XCTAssertThrowsError(try PublishBody.parseJSON(body, limits: .init(maxEventBytes: 100), channelKey: false)) { e in
            XCTAssertTrue((e as! BrokerError).message.contains("event [1]"))
        }
        let drafts = try? PublishBody.parseJSON(Array(#"[{"data":"a","conflate":"k"},{"data":{"x":1},"final":true}]"#.utf8),
                                                limits: .init(maxEventBytes: 100), channelKey: false)
        XCTAssertEqual(drafts, [EventDraft(data: .text("a"), conflate: "k"), EventDraft(data: .json("{\"x\":1}"), final: true)])
    }

    func testNDJSONErrorNamesTheLine() {
        let body = Array("{\"data\":1}\n{\"data\":2}\n{oops}\n".utf8)
        XCTAssertThrowsError(try PublishBody.parseNDJSON(body, limits: .init(maxEventBytes: 100), channelKey: false)) { e in
            XCTAssertTrue((e as! BrokerError).message.hasPrefix("line 3"), "\(e)")
        }
    }
}
