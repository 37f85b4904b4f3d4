// A final event completes the channel: live streams end after it, reconnects at or past
// it get 204 (EventSource stops), publishing after it gets 409.
import StarlingClient
import StarlingCore
import XCTest

final class FinalTests: XCTestCase {
    func testFinalEndsLiveStreamThen204Then409() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let s = try broker.client.subscribe(ch)
            try broker.client.publish(ch, data: "tok")
            let finalID = try broker.client.publish(ch, data: "done", event: "done", final: true)
            let got = try s.readToEnd(timeout: 3)
            XCTAssertEqual(got.map(\.data), ["tok", "done"], "[\(engine)]")
            XCTAssertTrue(s.connection.peerClosed, "the response ends after the final event")

            let again = try broker.client.subscribe(ch, lastEventID: finalID)
            XCTAssertEqual(again.head.status, 204)
            XCTAssertEqual(try broker.client.subscribe(ch).head.status, 204, "live-only on a completed channel")

            let r = try broker.client.publish(ch, json: "{\"data\":\"late\"}")
            XCTAssertEqual(r.status, 409)
            XCTAssertEqual(errorCode(r), "channel_final")

            // A client that resumes before the final event gets the rest, then the end.
            let late = try broker.client.subscribe(ch, lastEventID: "earliest")
            XCTAssertEqual(try late.readToEnd(timeout: 3).map(\.data), ["tok", "done"])
        }
    }

    func testFinalMustEndItsBatch() throws {
        try onEachEngine { broker, _ in
            let r = try broker.client.publish(uniqueChannel(), json: "[{\"data\":1,\"final\":true},{\"data\":2}]")
            XCTAssertEqual(r.status, 400)
        }
    }
}
