// --turn-pace: a loop turns at most once per pace under steady load, and nothing is lost
// or reordered for it (docs/operations.md). The pace is a floor on the time between
// turns, so a test can hold it from below without timing anything's speed.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class TurnPaceTests: XCTestCase {
    /// Back-to-back publishes, each sent once the previous one is answered: after the
    /// first, every request arrives while the loop sleeps out its pace, so 12 of them take
    /// at least ~10 paces. (Without a pace the same takes a few milliseconds.)
    func testBackToBackRequestsWaitForTheNextTurn() throws {
        try onEachEngine(["--turn-pace", "50ms"]) { broker, _ in
            let ch = uniqueChannel()
            let s = try broker.client.subscribe(ch)
            try broker.client.publish(ch, data: "warm-up")  // the first turn after idle does not wait
            XCTAssertEqual(try s.next()?.data, "warm-up")
            let start = Clock.now()
            for k in 0..<12 { XCTAssertFalse(try broker.client.publish(ch, data: "e\(k)").isEmpty) }
            let elapsed = Clock.now() - start
            XCTAssertGreaterThanOrEqual(elapsed, 0.45, "12 paced round trips took \(elapsed) s")
            for k in 0..<12 { XCTAssertEqual(try s.next()?.data, "e\(k)") }
        }
    }

    /// The same on one keep-alive connection: a client that waits on each answer (never two
    /// requests unanswered, each sent straight after the previous answer) is not held, so
    /// its 12 publishes take well under the ~10 paces above. (A mutation that ignores
    /// `expediteTurn` fails here.)
    func testAClientWaitingOnEachAnswerOnOneConnectionIsNotHeld() throws {
        try onEachEngine(["--turn-pace", "50ms", "--threads", "1"]) { broker, _ in
            let ch = uniqueChannel()
            let s = try broker.client.subscribe(ch)
            let c = try BlockingConnection(port: broker.port)
            func publish(_ data: String) throws {
                let body = "{\"data\":\"\(data)\"}"
                try c.send("POST /v1/channels/\(ch)/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                           + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
                XCTAssertEqual(try HTTPResponse.read(from: c, timeout: 10).status, 200)
            }
            try publish("warm-up")  // its answer starts the connection's record
            let start = Clock.now()
            for k in 0..<12 { try publish("e\(k)") }
            let elapsed = Clock.now() - start
            XCTAssertLessThan(elapsed, 0.3, "12 round trips on one connection took \(elapsed) s at a 50 ms pace")
            for data in ["warm-up"] + (0..<12).map({ "e\($0)" }) { XCTAssertEqual(try s.next()?.data, data) }
        }
    }

    /// A paced loop handles what arrived during its sleep in one turn: publishes to
    /// several channels reach every subscriber of each, whole and in order.
    func testPacedLoopLosesAndReordersNothing() throws {
        try onEachEngine(["--turn-pace", "2ms"]) { broker, _ in
            let channels = (0..<4).map { _ in uniqueChannel() }
            let subscribers = try channels.flatMap { ch in try (0..<2).map { _ in (ch, try broker.client.subscribe(ch)) } }
            for k in 0..<50 {
                for ch in channels { XCTAssertFalse(try broker.client.publish(ch, data: "\(ch)-\(k)").isEmpty) }
            }
            for (ch, s) in subscribers {
                for k in 0..<50 { XCTAssertEqual(try s.next()?.data, "\(ch)-\(k)") }
            }
        }
    }
}
