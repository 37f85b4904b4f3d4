// Idempotent producers (SPEC §4), on both engines over real sockets: seqs up to 2^63−1
// compared exactly, repeats acknowledged and not stored, a jump ahead refused naming the
// expected seq, epochs fencing old producers, batches and streams judged event by event.
import StarlingClient
import StarlingCore
import XCTest

final class ProducerTests: XCTestCase {
    static let twoTo53: Int64 = 9_007_199_254_740_992

    func event(_ producer: String, _ seq: Int64, epoch: Int64? = nil, data: String? = nil, final: Bool = false) -> String {
        var fields = "\"producer\":\"\(producer)\",\"seq\":\(seq),\"data\":\"\(data ?? "s\(seq)")\""
        if let epoch { fields += ",\"epoch\":\(epoch)" }
        if final { fields += ",\"final\":true" }
        return "{\(fields)}"
    }

    func answer(_ r: HTTPResponse) throws -> (count: Int, duplicates: Int) {
        let v = try JSONParser.parse(r.body)
        return (integer(v["count"]) ?? -1, integer(v["duplicates"]) ?? 0)
    }

    /// Every stored event's data, oldest first.
    func stored(_ broker: BrokerProcess, _ ch: String) throws -> [String] {
        let info = try JSONParser.parse(try broker.client.request("GET", "/v1/channels/\(ch)").body)
        let length = integer(info["length"]) ?? -1
        guard length > 0 else { return [] }
        return try broker.client.subscribe(ch, lastEventID: "earliest").next(length, timeout: 5).map(\.data)
    }

    func testSeqsAbove2To53AreStoredAndComparedExactly() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel("seq")
            let big = Self.twoTo53
            for seq in [big, big + 1] {
                let r = try broker.client.publish(ch, json: event("p", seq))
                XCTAssertEqual(r.status, 200, "[\(engine)] \(seq): \(r.text)")
                XCTAssertEqual(try answer(r).count, 1, "[\(engine)] \(seq) is stored: \(r.text)")
            }
            // The first seq of another producer may be any value, up to 2^63−1.
            for seq in [Int64.max - 1, Int64.max] {
                let r = try broker.client.publish(ch, json: event("q", seq))
                XCTAssertEqual(try answer(r).count, 1, "[\(engine)] \(seq): \(r.text)")
            }
            let again = try broker.client.publish(ch, json: event("p", big + 1))
            XCTAssertEqual(again.status, 200)
            XCTAssertEqual(try answer(again).count, 0, "[\(engine)] a repeat is not stored")
            XCTAssertEqual(try answer(again).duplicates, 1, "[\(engine)] a repeat is acknowledged: \(again.text)")
            XCTAssertEqual(try stored(broker, ch), ["s\(big)", "s\(big + 1)", "s\(Int64.max - 1)", "s\(Int64.max)"], "[\(engine)]")
        }
    }

    func testSeqAndEpochOutsideTheIntegerRangeAre400() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel("seq")
            let bad = ["9223372036854775808", "18446744073709551616", "-1", "1.5", "1e3", "2.0", "\"5\"", "true", "null"]
            for value in bad {
                for key in ["seq", "epoch"] {
                    let seqPart = key == "seq" ? value : "1"
                    let epochPart = key == "epoch" ? ",\"epoch\":\(value)" : ""
                    let r = try broker.client.publish(ch, json: "{\"producer\":\"p\",\"seq\":\(seqPart)\(epochPart),\"data\":1}")
                    XCTAssertEqual(r.status, 400, "[\(engine)] \(key) \(value): \(r.text)")
                    XCTAssertEqual(errorCode(r), "bad_event", "[\(engine)] \(key) \(value)")
                }
            }
            let lone = try broker.client.publish(ch, json: "{\"epoch\":1,\"data\":1}")
            XCTAssertEqual(lone.status, 400, "[\(engine)] an epoch needs a producer and a seq")
            XCTAssertEqual(try stored(broker, ch), [], "[\(engine)] nothing refused is stored")
        }
    }

    func testJumpAheadIs409NamingTheExpectedSeqAndStoresNothingOfTheBatch() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel("seq")
            XCTAssertEqual(try broker.client.publish(ch, json: "[\(event("p", 1)),\(event("p", 2))]").status, 200)
            let jump = try broker.client.publish(ch, json: event("p", 4))
            XCTAssertEqual(jump.status, 409, "[\(engine)] \(jump.text)")
            XCTAssertEqual(errorCode(jump), "producer_seq_gap")
            XCTAssertTrue(jump.text.contains("expected seq 3"), "[\(engine)] \(jump.text)")
            // A batch whose third event jumps: nothing of it is stored, not even its valid head.
            let batch = try broker.client.publish(ch, json: "[\(event("p", 3)),\(event("q", 70)),\(event("p", 5))]")
            XCTAssertEqual(batch.status, 409, "[\(engine)] \(batch.text)")
            XCTAssertTrue(batch.text.contains("expected seq 4"), "[\(engine)] \(batch.text)")
            XCTAssertEqual(try stored(broker, ch), ["s1", "s2"], "[\(engine)] all or nothing")
            // Repeats and the next seq in one batch: the repeats acknowledged, the rest stored.
            let mixed = try broker.client.publish(ch, json: "[\(event("p", 2)),\(event("p", 3)),\(event("p", 3)),\(event("p", 4))]")
            XCTAssertEqual(mixed.status, 200, "[\(engine)] \(mixed.text)")
            XCTAssertEqual(try answer(mixed).count, 2)
            XCTAssertEqual(try answer(mixed).duplicates, 2)
            XCTAssertEqual(try stored(broker, ch), ["s1", "s2", "s3", "s4"], "[\(engine)]")
            // POST /v1/events: the same rule per channel; a refused channel's batch is 409.
            let other = uniqueChannel("seq")
            let many = "[{\"channel\":\"\(other)\",\"producer\":\"p\",\"seq\":9,\"data\":1},{\"channel\":\"\(ch)\",\"producer\":\"p\",\"seq\":7,\"data\":2}]"
            let r = try broker.client.request("POST", "/v1/events", headers: [("Content-Type", "application/json")], body: Array(many.utf8))
            XCTAssertEqual(r.status, 409, "[\(engine)] \(r.text)")
            XCTAssertTrue(r.text.contains("expected seq 5"), "[\(engine)] \(r.text)")
            XCTAssertEqual(try stored(broker, ch), ["s1", "s2", "s3", "s4"], "[\(engine)]")
        }
    }

    func testEpochFencesLowerEpochsAndStartsANewSequence() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel("epoch")
            func publish(_ body: String) throws -> HTTPResponse { try broker.client.publish(ch, json: body) }
            XCTAssertEqual(try publish("[\(event("w", 10, epoch: 1)),\(event("w", 11, epoch: 1))]").status, 200)
            // A restarted worker takes epoch 2 and starts over at any seq.
            let fresh = try publish(event("w", 0, epoch: 2, data: "e2-0"))
            XCTAssertEqual(fresh.status, 200, "[\(engine)] \(fresh.text)")
            XCTAssertEqual(try answer(fresh).count, 1)
            // The old worker (epoch 1), and a worker without epoch (0), are fenced.
            for old in [event("w", 12, epoch: 1), event("w", 12), event("w", 1, epoch: 0)] {
                let r = try publish(old)
                XCTAssertEqual(r.status, 409, "[\(engine)] \(old): \(r.text)")
                XCTAssertEqual(errorCode(r), "producer_fenced", "[\(engine)] \(r.text)")
            }
            XCTAssertEqual(try answer(try publish(event("w", 1, epoch: 2, data: "e2-1"))).count, 1)
            XCTAssertEqual(errorCode(try publish(event("w", 3, epoch: 2))), "producer_seq_gap")
            // Epochs compare exactly up to 2^63−1 as well.
            XCTAssertEqual(try answer(try publish(event("w", 5, epoch: Self.twoTo53, data: "big-5"))).count, 1)
            XCTAssertEqual(errorCode(try publish(event("w", 6, epoch: Self.twoTo53 - 1))), "producer_fenced", "[\(engine)]")
            XCTAssertEqual(try answer(try publish(event("w", 0, epoch: Int64.max, data: "max-0"))).count, 1)
            XCTAssertEqual(errorCode(try publish(event("w", 1, epoch: Int64.max - 1))), "producer_fenced", "[\(engine)]")
            // A batch that a fenced event ends stores nothing.
            let batch = try publish("[\(event("w", 1, epoch: Int64.max, data: "max-1")),\(event("w", 2, epoch: 7))]")
            XCTAssertEqual(errorCode(batch), "producer_fenced", "[\(engine)] \(batch.text)")
            XCTAssertEqual(try stored(broker, ch), ["s10", "s11", "e2-0", "e2-1", "big-5", "max-0"], "[\(engine)]")
        }
    }

    func testRepeatOfTheFinalEventIsAcknowledgedAndNewEventsAre409() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel("final")
            XCTAssertEqual(try broker.client.publish(ch, json: "[\(event("p", 1)),\(event("p", 2, final: true))]").status, 200)
            // The worker timed out and resends its last batch: acknowledged, nothing doubled.
            let resent = try broker.client.publish(ch, json: "[\(event("p", 1)),\(event("p", 2, final: true))]")
            XCTAssertEqual(resent.status, 200, "[\(engine)] \(resent.text)")
            XCTAssertEqual(try answer(resent).duplicates, 2)
            let more = try broker.client.publish(ch, json: event("p", 3))
            XCTAssertEqual(more.status, 409)
            XCTAssertEqual(errorCode(more), "channel_final", "[\(engine)] \(more.text)")
            XCTAssertEqual(try stored(broker, ch), ["s1", "s2"], "[\(engine)]")
        }
    }

    func testStreamingBodyStoresTheLinesBeforeAJumpAndNamesTheExpectedSeq() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel("stream")
            // One read carries all five lines: the broker judges them as one batch, then
            // stores the three before the jump, as a stream is judged line by line.
            let body = [1, 2, 3, 5, 6].map { event("g", Int64($0)) }.joined(separator: "\n") + "\n"
            let r = try broker.client.request("POST", "/v1/channels/\(ch)/events", headers: [("Content-Type", "application/x-ndjson")],
                                              body: Array(body.utf8))
            XCTAssertEqual(r.status, 409, "[\(engine)] \(r.text)")
            XCTAssertEqual(errorCode(r), "producer_seq_gap")
            XCTAssertTrue(r.text.contains("expected seq 4"), "[\(engine)] \(r.text)")
            XCTAssertTrue(r.text.contains("3 event(s) before it were published"), "[\(engine)] \(r.text)")
            XCTAssertEqual(try stored(broker, ch), ["s1", "s2", "s3"], "[\(engine)]")
            // The worker resumes from 4 (resending 3 as well): 3 is a repeat, 4 and on are stored.
            let resume = [3, 4, 5].map { event("g", Int64($0)) }.joined(separator: "\n") + "\n"
            let r2 = try broker.client.request("POST", "/v1/channels/\(ch)/events", headers: [("Content-Type", "application/x-ndjson")],
                                               body: Array(resume.utf8))
            XCTAssertEqual(r2.status, 200, "[\(engine)] \(r2.text)")
            XCTAssertEqual(try answer(r2).duplicates, 1)
            XCTAssertEqual(try stored(broker, ch), ["s1", "s2", "s3", "s4", "s5"], "[\(engine)]")
        }
    }
}

/// A JSON number's value as an Int (nil if absent or not an integer).
func integer(_ v: JSONValue?) -> Int? {
    guard case .number(let text)? = v else { return nil }
    return Int(text)
}

