// GET /v1/events?channel=A&channel=B: one stream, envelopes, one cursor resuming all.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class MultiplexTests: XCTestCase {
    func subscribeMany(_ broker: BrokerProcess, _ channels: [String], lastEventID: String? = nil) throws -> SSEStream {
        let c = try BlockingConnection(port: broker.port)
        var headers: [(String, String)] = []
        if let lastEventID { headers.append(("Last-Event-ID", lastEventID)) }
        let q = channels.map { "channel=\($0)" }.joined(separator: "&")
        try c.send(StarlingHTTPClient.format("GET", "/v1/events?\(q)", headers: headers))
        return SSEStream(connection: c, head: try HTTPResponse.read(from: c))
    }

    func testEnvelopeKeepsNameAndEmbedsData() throws {
        try onEachEngine { broker, _ in
            let a = uniqueChannel(), b = uniqueChannel()
            let s = try subscribeMany(broker, [a, b])
            XCTAssertEqual(s.head.status, 200)
            try broker.client.publish(a, data: "hi \"there\"", event: "token")
            _ = try broker.client.publish(b, json: "{\"event\":\"progress\",\"data\":{\"pct\":40}}")
            let got = try s.next(2)
            XCTAssertEqual(got.map(\.event), ["token", "progress"])
            XCTAssertEqual(got[0].data, "{\"channel\":\"\(a)\",\"data\":\"hi \\\"there\\\"\"}")
            XCTAssertEqual(got[1].data, "{\"channel\":\"\(b)\",\"data\":{\"pct\":40}}")
            XCTAssertTrue(got[1].id?.hasPrefix("m1:") ?? false)
        }
    }

    func testResumeWithCursorGetsEveryEventOnceWhilePublishersGoOn() throws {
        try onEachEngine(["--retain-events", "100000"]) { broker, engine in
            let channels = [uniqueChannel(), uniqueChannel(), uniqueChannel()]
            let perChannel = 300
            final class Flag: @unchecked Sendable { var stop = false }
            let done = DispatchSemaphore(value: 0)
            let publisher = Thread {
                for k in 1...perChannel {
                    for (i, ch) in channels.enumerated() { _ = try? broker.client.publish(ch, data: "\(i):\(k)") }
                }
                done.signal()
            }
            var seen: [[Int]] = [[], [], []]
            var s = try subscribeMany(broker, channels, lastEventID: "earliest")
            publisher.start()
            var cursor: String?
            var reconnects = 0
            while seen.map(\.count).reduce(0, +) < 3 * perChannel {
                guard let m = try s.next(timeout: 5) else { break }
                let env = try JSONParser.parse(Array(m.data.utf8))
                let i = channels.firstIndex(of: env["channel"]!.stringValue!)!
                seen[i].append(Int(env["data"]!.stringValue!.split(separator: ":")[1])!)
                cursor = m.id
                // Cut the stream every 200 events and resume with the last cursor.
                if seen.map(\.count).reduce(0, +) % 200 == 0 {
                    reconnects += 1
                    s = try subscribeMany(broker, channels, lastEventID: cursor)
                }
            }
            _ = done.wait(timeout: .now() + 30)
            XCTAssertGreaterThanOrEqual(reconnects, 3)
            for i in 0..<3 {
                XCTAssertTrue(seen[i] == Array(1...perChannel), "[\(engine)] channel \(i): \(seen[i].count) events, once each, in order")
            }
        }
    }

    func testLimitsAndBadCursors() throws {
        try onEachEngine { broker, _ in
            let many = (0..<65).map { "c\($0)" }
            XCTAssertEqual(try subscribeMany(broker, many).head.status, 400)
            XCTAssertEqual(try subscribeMany(broker, Array(many.prefix(64))).head.status, 200)
            let a = uniqueChannel(), b = uniqueChannel()
            let s = try subscribeMany(broker, [a, b])
            try broker.client.publish(a, data: "x")
            let cursor = try XCTUnwrap(try s.next()?.id)
            let tampered = cursor.replacingFirstDigit()
            XCTAssertEqual(try subscribeMany(broker, [a, b], lastEventID: tampered).head.status, 400)
            XCTAssertEqual(try subscribeMany(broker, [b, a], lastEventID: cursor).head.status, 400, "a cursor for another channel set")
            XCTAssertEqual(try subscribeMany(broker, [a, b], lastEventID: "garbage").head.status, 400)
            XCTAssertEqual(try subscribeMany(broker, [a, b], lastEventID: cursor).head.status, 200)
        }
    }

    func testEndsWhenEveryChannelIsFinalThen204() throws {
        try onEachEngine { broker, _ in
            let a = uniqueChannel(), b = uniqueChannel()
            let s = try subscribeMany(broker, [a, b])
            try broker.client.publish(a, data: "a-end", final: true)
            XCTAssertEqual(try s.next()?.data, "{\"channel\":\"\(a)\",\"data\":\"a-end\"}")
            XCTAssertFalse(s.connection.peerClosed, "one channel still open")
            try broker.client.publish(b, data: "b-end", final: true)
            let rest = try s.readToEnd(timeout: 3)
            XCTAssertEqual(rest.count, 1)
            XCTAssertTrue(s.connection.peerClosed)
            XCTAssertEqual(try subscribeMany(broker, [a, b], lastEventID: rest.last!.id).head.status, 204)
        }
    }
}

extension String {
    /// The cursor with its first position digit changed (the checksum no longer matches).
    func replacingFirstDigit() -> String {
        var chars = Array(self)
        if let i = chars.indices.first(where: { $0 > 3 && chars[$0].isNumber }) {
            chars[i] = chars[i] == "1" ? "2" : "1"
        }
        return String(chars)
    }
}
