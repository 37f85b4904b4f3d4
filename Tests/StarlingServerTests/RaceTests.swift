// Events published while a resuming subscriber catches up arrive once each, in order.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class RaceTests: XCTestCase {
    func testPublishingDuringCatchUpDeliversEachEventOnceInOrder() throws {
        try onEachEngine(["--retain-events", "100000"]) { broker, engine in
            let ch = uniqueChannel()
            try broker.publishNumbered(ch, count: 2000, batch: 200)
            let total = 2000 + 1000
            let publisher = Thread {
                _ = try? broker.publishNumbered(ch, count: 1000, from: 2001, batch: 10)
            }
            publisher.start()
            var seen: [Int] = []
            // Several subscribers join at different moments of the publishing.
            for _ in 0..<3 {
                let s = try broker.client.subscribe(ch, lastEventID: "earliest")
                let got = try s.next(total, timeout: 10)
                seen = got.map { Int($0.data.dropFirst(2))! }
                XCTAssertEqual(seen, Array(1...total), "[\(engine)] each event once, in order")
                let ids = got.compactMap { $0.id.flatMap(EventID.init) }
                XCTAssertEqual(ids, ids.sorted())
            }
        }
    }
}
