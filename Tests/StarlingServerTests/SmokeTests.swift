import StarlingClient
import StarlingCore
import XCTest

final class SmokeTests: XCTestCase {
    func testPublishThenSubscribeFromEarliestGetsTheEvent() throws {
        try onEachEngine { broker, _ in
            let ch = uniqueChannel()
            let id = try broker.client.publish(ch, data: "hello")
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            XCTAssertEqual(s.head.status, 200)
            let m = try XCTUnwrap(s.next())
            XCTAssertEqual(m, SSEMessage(id: id, event: "message", data: "hello"))
        }
    }
}
