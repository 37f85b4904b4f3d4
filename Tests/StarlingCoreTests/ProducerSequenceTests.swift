// The producer rule and the memory engine's forgetting, without sockets (the broker
// tests prove the same over HTTP on both engines).
import StarlingCore
import StarlingStore
import XCTest

final class ProducerSequenceTests: XCTestCase {
    func d(_ seq: Int64, epoch: Int64? = nil, producer: String = "p") -> EventDraft {
        EventDraft(data: .text("\(seq)"), producer: producer, seq: seq, epoch: epoch)
    }

    func testRuleStoresNextRepeatsAndRefusesJumpsAndLowerEpochs() throws {
        var table = ProducerTable()
        table.record(try table.judge([d(Int64.max - 1)]).get())
        XCTAssertEqual(try table.judge([d(Int64.max)]).get().duplicates, 0)
        XCTAssertEqual(try table.judge([d(Int64.max - 1)]).get().duplicate, [true])
        table.record(try table.judge([d(Int64.max)]).get())
        XCTAssertEqual(try table.judge([d(0, epoch: 1)]).get().duplicate, [false], "a higher epoch starts over")
        // q's first seq may be any value; 5 after 3 is a jump, named by its index.
        let jump = try XCTUnwrap(table.judge([d(Int64.max), d(3, producer: "q"), d(5, producer: "q")]).failure)
        XCTAssertEqual(jump.code, "producer_seq_gap")
        XCTAssertEqual(jump.eventIndex, 2)
        XCTAssertTrue(jump.message.contains("expected seq 4"), jump.message)
        table.record(try table.judge([d(7, epoch: 3)]).get())
        let fenced = try XCTUnwrap(table.judge([d(8, epoch: 2)]).failure)
        XCTAssertEqual(fenced.code, "producer_fenced")
        XCTAssertEqual(table.positions["p"], ProducerPosition(epoch: 3, highest: 7))
    }

    func testParsingKeepsSeqsExactAndRefusesTheRest() throws {
        let limits = PublishLimits(maxEventBytes: 1000)
        func parse(_ json: String) throws -> EventDraft {
            try PublishBody.parseJSON(Array(json.utf8), limits: limits, channelKey: false)[0]
        }
        XCTAssertEqual(try parse("{\"producer\":\"p\",\"seq\":9007199254740993,\"data\":1}").seq, 9_007_199_254_740_993)
        XCTAssertEqual(try parse("{\"producer\":\"p\",\"seq\":9223372036854775807,\"epoch\":9223372036854775807,\"data\":1}").epoch, Int64.max)
        for bad in ["9223372036854775808", "-1", "-0", "1.0", "1e2", "\"1\""] {
            XCTAssertThrowsError(try parse("{\"producer\":\"p\",\"seq\":\(bad),\"data\":1}"), bad)
            XCTAssertThrowsError(try parse("{\"producer\":\"p\",\"seq\":1,\"epoch\":\(bad),\"data\":1}"), bad)
        }
        XCTAssertThrowsError(try parse("{\"epoch\":1,\"data\":1}"))
    }

    func testMemoryStoreForgetsUnwatchedExpiredChannels() {
        var now: UInt64 = 1_000_000
        let s = MemoryStore(retainEvents: 10, retainSeconds: 2, clock: { now })
        s.append([EventDraft(data: .text("a"), final: true)], to: "done") { _ in }
        s.append([EventDraft(data: .text("b"))], to: "watched") { _ in }
        s.watch("watched")
        XCTAssertEqual(s.channelCount, 2)
        now += 1_999
        s.tick(nowMs: now)
        XCTAssertEqual(s.channelCount, 2, "not due yet")
        now += 1
        s.tick(nowMs: now)
        XCTAssertEqual(s.channelCount, 1, "the unwatched one is forgotten; the watched one kept")
        var result: Result<AppendResult, BrokerError>?
        s.append([EventDraft(data: .text("again"))], to: "done") { result = $0 }
        XCTAssertEqual((try? result?.get())?.count, 1, "a final channel's name is free again")
        s.unwatch("watched")
        now += 2_000
        s.tick(nowMs: now)
        XCTAssertEqual(s.channelCount, 0)
    }
}

extension Result {
    var failure: Failure? { if case .failure(let e) = self { return e } else { return nil } }
}
