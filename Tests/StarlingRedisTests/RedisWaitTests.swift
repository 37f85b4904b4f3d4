// --redis-wait N on one Redis: a publish is answered 200 only once N replicas confirm it
// (WAIT N timeout); with too few replicas it is 503 replicas_unconfirmed, never 200.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class RedisWaitTests: XCTestCase {
    func testPublishIs200OnlyOnceAReplicaConfirmsIt() throws {
        let master = try RedisServer(appendOnly: false)
        let broker = try BrokerProcess(["--redis", master.url, "--redis-wait", "1", "--redis-wait-timeout", "200ms"])
        defer { broker.terminate() }
        let ch = uniqueChannel("wait")
        let lone = try broker.client.publish(ch, json: #"{"data":"e-1"}"#)
        XCTAssertEqual(lone.status, 503, "no replica: not confirmed")
        XCTAssertTrue(lone.text.contains("replicas_unconfirmed"), lone.text)
        XCTAssertNotNil(lone.header("Retry-After"))
        let loneCancel = try broker.client.request("POST", "/v1/channels/\(uniqueChannel("wait"))/cancel")
        XCTAssertEqual(loneCancel.status, 503, "a cancel is a stored event too")
        XCTAssertTrue(loneCancel.text.contains("replicas_unconfirmed"), loneCancel.text)

        let replica = try RedisServer(appendOnly: false)
        XCTAssertEqual(try replica.cli("REPLICAOF", "127.0.0.1", "\(master.port)"), "OK")
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline, !((try? master.cli("INFO", "replication"))?.contains("state=online") ?? false) { usleep(50_000) }
        // A replica just online acknowledges its offset within about a second: until then a
        // publish is still 503, never 200.
        var confirmed = try broker.client.publish(ch, json: #"{"data":"e-2"}"#)
        let settle = Date().addingTimeInterval(5)
        while confirmed.status == 503, Date() < settle {
            XCTAssertTrue(confirmed.text.contains("replicas_unconfirmed"), confirmed.text)
            confirmed = try broker.client.publish(ch, json: #"{"data":"e-2"}"#)
        }
        XCTAssertEqual(confirmed.status, 200, confirmed.text)
        let id = try JSONParser.parse(confirmed.body)["last"]?.stringValue ?? ""
        // The 200 came after WAIT: the replica has the entry now.
        XCTAssertTrue(try replica.cli("XRANGE", "starling:{\(ch)}", id, id).contains("e-2"))
        XCTAssertEqual(try broker.client.request("POST", "/v1/channels/\(uniqueChannel("wait"))/cancel").status, 200)
    }
}
