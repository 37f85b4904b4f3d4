// A refused streaming publish, from the worker's side (SPEC §4, issue 14): after the 409 of
// a Stop the broker closes within a short linger, so a worker that only writes learns it
// from a failed write in well under a second, and nothing it sent after the refusal is
// stored; a token that expires while the body is open gets its 401 at once.
import Foundation
import StarlingAuth
import StarlingClient
import StarlingCore
import XCTest

final class StreamingRefusalTests: XCTestCase {
    /// Seconds until the worker's writer thread leaves after a failed write (nil: it did not).
    func secondsUntilWritesFail(_ worker: TokenWorker, within limit: Double = 5) -> Double? {
        let t0 = Clock.now()
        while !worker.writerEnded {
            if Clock.now() - t0 > limit { return nil }
            usleep(2_000)
        }
        return Clock.now() - t0
    }

    func testAfterAStopTheWorkersNextWritesFailPromptlyAndNothingAfterIsStored() throws {
        try onEachEngine { broker, run in
            let ch = uniqueChannel("gen")
            let worker = try TokenWorker(port: broker.port, channel: ch, everyMs: 10)
            defer { worker.stop() }
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            XCTAssertEqual(try s.next(5).count, 5, "[\(run)] tokens flow")
            let (_, answer) = try stopAndTime(broker, ch, worker: worker)
            XCTAssertEqual(errorCode(answer), "channel_cancelled", "[\(run)]")
            let sentAtAnswer = worker.sent
            // The worker goes on writing a line every 10 ms without reading.
            let failedAfter = secondsUntilWritesFail(worker)
            print("[\(run)] 409 → the worker's write fails: \(failedAfter.map { String(format: "%.0f ms", $0 * 1000) } ?? "never")")
            let seconds = try XCTUnwrap(failedAfter, "[\(run)] a write fails once the broker closes")
            XCTAssertLessThan(seconds, 1.0, "[\(run)] the broker does not linger for seconds")
            XCTAssertGreaterThan(worker.sent, sentAtAnswer, "[\(run)] the worker did write after the refusal")

            let stored = try broker.client.subscribe(ch, lastEventID: "earliest").readToEnd(timeout: 3)
            XCTAssertEqual(stored.last?.event, "starling.cancelled", "[\(run)]")
            let tokens = stored.dropLast().map(\.data)
            XCTAssertEqual(tokens, (0..<tokens.count).map { "t\($0 + 1) " }, "[\(run)] the tokens before the Stop, in order, once")
            XCTAssertLessThanOrEqual(tokens.count, sentAtAnswer, "[\(run)] nothing written after the refusal is stored")
        }
    }

    func testATokenThatExpiresDuringAStreamingPublishIsAnswered401AtOnce() throws {
        let secret = "test-secret-0123456789abcdef-0123456789"
        let signer = try TokenSigner(hmacSecret: secret)
        try onEachEngine(["--jwt-secret", secret]) { broker, run in
            let ch = uniqueChannel("gen")
            // exp 1 s ahead; the broker allows 5 s of clock leeway, so it lapses in about 6 s.
            let exp = Int(Date().timeIntervalSince1970) + 1
            let token = try signer.token(publish: [ch], subscribe: [ch], expiresAt: exp)
            let worker = try TokenWorker(port: broker.port, channel: ch, everyMs: 20, headers: [("Authorization", "Bearer \(token)")])
            defer { worker.stop() }
            let answer = try HTTPResponse.read(from: worker.connection, timeout: 15)  // the body never ends
            let lapsed = Date().timeIntervalSince1970 - Double(exp + 5)
            XCTAssertEqual(answer.status, 401, "[\(run)] \(answer.text)")
            XCTAssertEqual(errorCode(answer), "unauthorized")
            XCTAssertTrue(answer.text.contains("the token expired during the publish"), answer.text)
            XCTAssertEqual(answer.header("connection"), "close")
            XCTAssertGreaterThan(lapsed, -0.1, "[\(run)] not before the token (with its leeway) lapsed")
            XCTAssertLessThan(lapsed, 1.5, "[\(run)] answered at the first line after it lapsed, not at the body's end")
            let seconds = try XCTUnwrap(secondsUntilWritesFail(worker), "[\(run)] the connection closes")
            XCTAssertLessThan(seconds, 1.0)

            // Lines before the lapse stay stored, none after; the answer counts them.
            let stored = try broker.client.subscribe(ch, lastEventID: "earliest", headers: [("Authorization", "Bearer \(try signer.token(subscribe: [ch]))")])
                .next(10_000, timeout: 1)
            XCTAssertEqual(stored.map(\.data), (0..<stored.count).map { "t\($0 + 1) " }, "[\(run)]")
            XCTAssertTrue(answer.text.contains("; \(stored.count) event(s) before it were published"), "[\(run)] \(answer.text)")
            XCTAssertGreaterThan(stored.count, 100, "[\(run)] the lines of the first seconds were stored")
        }
    }
}
