// Heartbeats: a comment after --heartbeat seconds without traffic, never on a busy stream.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class HeartbeatTests: XCTestCase {
    func testIdleSubscriberSeesACommentWithinTwoSeconds() throws {
        try onEachEngine(["--heartbeat", "1"]) { broker, _ in
            let s = try broker.client.subscribe(uniqueChannel())
            let opening = s.comments
            let deadline = Clock.now() + 2
            while s.comments == opening, Clock.now() < deadline { try s.pump(timeout: deadline - Clock.now()) }
            XCTAssertGreaterThan(s.comments, opening, "a heartbeat comment within 2 s")
        }
    }

    func testBusyStreamGetsNoHeartbeats() throws {
        try onEachEngine(["--heartbeat", "1"]) { broker, _ in
            let ch = uniqueChannel()
            let s = try broker.client.subscribe(ch)
            let opening = s.comments
            for k in 0..<12 {
                try broker.client.publish(ch, data: "tick-\(k)")
                XCTAssertEqual(try s.next()?.data, "tick-\(k)")
                Thread.sleep(forTimeInterval: 0.25)
            }
            XCTAssertEqual(s.comments, opening, "3 s of traffic every 250 ms: no heartbeat needed")
        }
    }
}
