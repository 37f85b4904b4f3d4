// One producer's consecutive seqs sent at once to two broker nodes on one Redis: whatever
// order they land in, a 200 is never given for an event that was not stored (k+1 before
// k is a gap, 409, not a repeat). And the script compares seqs above 2^53 exactly.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class ProducerRaceTests: XCTestCase {
    /// One keep-alive connection to a node; `publish` sends one JSON event and reads the answer.
    final class Publisher: @unchecked Sendable {  // used by one thread at a time
        let connection: BlockingConnection
        let channel: String
        init(_ broker: BrokerProcess, channel: String) throws {
            connection = try BlockingConnection(port: broker.port)
            self.channel = channel
        }
        func publish(_ json: String) throws -> HTTPResponse {
            try connection.send(StarlingHTTPClient.format("POST", "/v1/channels/\(channel)/events",
                                                          headers: [("Content-Type", "application/json")], body: Array(json.utf8)))
            return try HTTPResponse.read(from: connection, timeout: 10)
        }
    }

    func testConsecutiveSeqsRacingOnTwoNodesNeverAnswer200ForAnUnstoredEvent() throws {
        let url = try BrokerProcess.redisURL()
        let a = try BrokerProcess(["--redis", url, "--retain-events", "10000"])
        let b = try BrokerProcess(["--redis", url, "--retain-events", "10000"])
        defer { a.terminate(); b.terminate() }
        let ch = uniqueChannel("race")
        let publishers = [try Publisher(a, channel: ch), try Publisher(b, channel: ch)]
        let rounds = 400
        var answered: Set<String> = []   // data of every event answered 200 with count 1
        var orders = [0, 0]              // rounds where k stored first / where k+1 came first and was refused
        for round in 0..<rounds {
            let producer = "w\(round)"
            let k = Int64(round) * 1_000_000_007 + 9_007_199_254_740_000  // around 2^53 too
            let seed = "{\"producer\":\"\(producer)\",\"seq\":\(k - 1),\"data\":\"\(producer)/\(k - 1)\"}"
            let r0 = try publishers[round % 2].publish(seed)
            XCTAssertEqual(r0.status, 200, r0.text)
            answered.insert("\(producer)/\(k - 1)")
            // k to one node, k+1 to the other, at the same moment.
            final class Results: @unchecked Sendable {  // guarded by lock
                let lock = NSLock()
                var list: [Result<HTTPResponse, Error>?] = [nil, nil]
            }
            let results = Results()
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                let seq = k + Int64(i)
                let node = (round + i) % 2
                let r = Result { try publishers[node].publish("{\"producer\":\"\(producer)\",\"seq\":\(seq),\"data\":\"\(producer)/\(seq)\"}") }
                results.lock.lock(); results.list[i] = r; results.lock.unlock()
            }
            for i in 0..<2 {
                let r = try XCTUnwrap(results.list[i]).get()
                let v = try JSONParser.parse(r.body)
                switch r.status {
                case 200:
                    XCTAssertEqual(integer(v["count"]), 1, "round \(round), seq k+\(i): a 200 must mean stored: \(r.text)")
                    answered.insert("\(producer)/\(k + Int64(i))")
                case 409:
                    XCTAssertEqual(i, 1, "only k+1 can be early: \(r.text)")
                    XCTAssertEqual(v["error"]?["code"]?.stringValue, "producer_seq_gap")
                    XCTAssertTrue(r.text.contains("expected seq \(k)"), r.text)
                    orders[1] += 1
                default:
                    XCTFail("round \(round): \(r.status) \(r.text)")
                }
            }
            if results.list.allSatisfy({ (try? $0?.get())?.status == 200 }) { orders[0] += 1 }
        }
        // What Redis holds is exactly what was answered 200.
        let key = "starling:{\(ch)}"
        XCTAssertEqual(Int(try sharedRedisCLI("XLEN", key)), answered.count)
        let history = try a.client.subscribe(ch, lastEventID: "earliest").next(answered.count, timeout: 10).map(\.data)
        XCTAssertEqual(Set(history), answered, "stored == answered 200")
        XCTAssertEqual(history.count, answered.count, "nothing stored twice")
        print("two Redis nodes, k and k+1 at once, \(rounds) rounds: \(orders[0]) both stored, "
              + "\(orders[1]) k+1 first (409 producer_seq_gap), \(answered.count) events stored = answered 200")
    }

    func testScriptComparesSeqsAbove2To53Exactly() throws {
        let script = try String(contentsOf: repositoryRoot.appendingPathComponent("ops/redis/publish.lua"), encoding: .utf8)
        let key = "starling:{\(uniqueChannel("script"))}"
        func call(_ seq: String, producer: String = "p") throws -> String {
            try sharedRedisCLI("EVAL", script, "1", key, "1000", "3600", "token", "x", "text", "", "0", producer, seq)
        }
        XCTAssertFalse(try call("9007199254740992").isEmpty)
        XCTAssertTrue(try call("9007199254740993").contains("-"), "2^53+1 after 2^53 is stored, not a repeat")
        XCTAssertEqual(try call("9007199254740993"), "", "a repeat")
        XCTAssertEqual(try call("0009007199254740993"), "", "leading zeros name the same seq")
        XCTAssertTrue(try call("9007199254740995").contains("SEQGAP"))
        XCTAssertTrue(try call("9007199254740995").contains("expected seq 9007199254740994"))
        XCTAssertTrue(try call("9223372036854775807", producer: "q").contains("-"), "2^63−1 as a first seq")
        XCTAssertTrue(try call("9223372036854775808", producer: "r").contains("ERR starling"), "2^63 is refused")
        XCTAssertTrue(try call("1:5").contains("-"), "epoch 1 starts a new sequence")
        XCTAssertTrue(try call("0:9007199254740994").contains("FENCED"), "epoch 0 is fenced after epoch 1")
        XCTAssertEqual(try sharedRedisCLI("HGET", "\(key):producers", "p"), "1:5")
        XCTAssertEqual(try sharedRedisCLI("XLEN", key), "4")
    }
}

/// A JSON number's value as an Int (nil if absent or not an integer).
func integer(_ v: JSONValue?) -> Int? {
    guard case .number(let text)? = v else { return nil }
    return Int(text)
}
