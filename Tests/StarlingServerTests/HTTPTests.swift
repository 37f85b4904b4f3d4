// HTTP/1.1 behaviour: pipelining, keep-alive, SSE response headers and opening bytes,
// health routes, channel info, CORS.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class HTTPTests: XCTestCase {
    func testFiftyPipelinedPublishesAreAnsweredInOrder() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let c = try BlockingConnection(port: broker.port)
            var bytes: [UInt8] = []
            for k in 1...50 {
                bytes += StarlingHTTPClient.format("POST", "/v1/channels/\(ch)/events", headers: [("Content-Type", "text/plain")],
                                                   body: Array("p-\(k)".utf8))
            }
            try c.send(bytes)  // all 50 in one write
            var last: EventID?
            for k in 1...50 {
                let r = try HTTPResponse.read(from: c)
                XCTAssertEqual(r.status, 200, "[\(engine)] #\(k)")
                let id = EventID(try JSONParser.parse(r.body)["first"]!.stringValue!)!
                if let last { XCTAssertGreaterThan(id, last, "answers come back in request order") }
                last = id
            }
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            XCTAssertEqual(try s.next(50).map(\.data), (1...50).map { "p-\($0)" })
        }
    }

    /// The plain-request fast path (PlainRequest) hands over to http_parser mid-read and
    /// back: plain, chunked, plain, a request cut across two writes, then a malformed one.
    /// Every stored publish is answered 200 in order, the malformed one 400, and the
    /// stream holds exactly the stored events.
    func testPlainAndOtherRequestsMixedInOneReadAreAnsweredInOrder() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let path = "/v1/channels/\(ch)/events"
            let c = try BlockingConnection(port: broker.port)
            let plain = { (text: String) in
                StarlingHTTPClient.format("POST", path, headers: [("Content-Type", "text/plain")], body: Array(text.utf8))
            }
            let chunked = Array("POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nb1\r\n0\r\n\r\n".utf8)
            let cut = plain("d1")
            try c.send(plain("a1") + chunked + plain("c1") + cut[..<(cut.count - 5)])
            Thread.sleep(forTimeInterval: 0.2)
            try c.send(Array(cut[(cut.count - 5)...]) + plain("e1") + Array("GET / HTTP/1.1\r\nBad Header\r\n\r\n".utf8))
            var ids: [EventID] = []
            for k in 0..<5 {
                let r = try HTTPResponse.read(from: c)
                XCTAssertEqual(r.status, 200, "[\(engine)] publish #\(k)")
                ids.append(EventID(try JSONParser.parse(r.body)["first"]!.stringValue!)!)
            }
            XCTAssertEqual(ids, ids.sorted(), "[\(engine)] answers in request order")
            XCTAssertEqual(try HTTPResponse.read(from: c).status, 400, "[\(engine)] the malformed request")
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            XCTAssertEqual(try s.next(5).map(\.data), ["a1", "b1", "c1", "d1", "e1"], "[\(engine)]")
        }
    }

    /// A chunked body may end with trailer fields: they are dropped, the publish is stored
    /// and answered, and the connection goes on (they once reached the head reader after the
    /// head and stopped the broker: FuzzTests seed 14848977254935832907).
    func testTrailerFieldsAfterAChunkedBodyAreIgnored() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let c = try BlockingConnection(port: broker.port)
            let head = "POST /v1/channels/\(ch)/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            try c.send(Array((head + "Content-Type: text/plain\r\n\r\n2\r\nt1\r\n0\r\nX-Trailer: a\r\nX-Other: bb\r\n\r\n").utf8))
            try c.send(Array((head + "Content-Type: application/x-ndjson\r\n\r\ne\r\n{\"data\":\"t2\"}\n\r\n0\r\nX-Trailer: c\r\n\r\n").utf8))
            for k in 0..<2 { XCTAssertEqual(try HTTPResponse.read(from: c).status, 200, "[\(engine)] publish #\(k)") }
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            XCTAssertEqual(try s.next(2).map(\.data), ["t1", "t2"], "[\(engine)]")
            XCTAssertEqual(try broker.client.request("GET", "/healthz").status, 200, "[\(engine)] still serving")
        }
    }

    /// A connection's request buffers serve its next request once a publish is answered
    /// (RequestReader.recycle): bodies and heads that shrink, grow past what is kept, and
    /// shrink again, pipelined and one by one, must each be stored exactly as sent, with no
    /// byte of an earlier request showing through.
    func testRecycledRequestBuffersNeverLeakAnEarlierRequest() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let path = "/v1/channels/\(ch)/events"
            let c = try BlockingConnection(port: broker.port)
            let sizes = [3000, 5, 40_000, 1, 17_000, 2, 16_383, 16_385, 7]
            let texts = sizes.enumerated().map { k, n in String(repeating: String(UnicodeScalar(UInt8(0x61 + k))), count: n) }
            func request(_ text: String, padding: Int) -> [UInt8] {
                StarlingHTTPClient.format("POST", path, headers: [("Content-Type", "text/plain"), ("X-Pad", String(repeating: "p", count: padding))],
                                          body: Array(text.utf8))
            }
            // The first half pipelined in one write, the rest one at a time.
            try c.send(texts.prefix(4).enumerated().flatMap { k, t in request(t, padding: k % 2 == 0 ? 5000 : 1) })
            for _ in 0..<4 { XCTAssertEqual(try HTTPResponse.read(from: c).status, 200, "[\(engine)]") }
            for (k, t) in texts.dropFirst(4).enumerated() {
                try c.send(request(t, padding: k % 2 == 0 ? 1 : 6000))
                XCTAssertEqual(try HTTPResponse.read(from: c).status, 200, "[\(engine)]")
            }
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            let got = try s.next(texts.count).map(\.data)
            // Sizes, then the bytes (without printing 100 KB when they differ).
            XCTAssertEqual(got.map(\.utf8.count), sizes, "[\(engine)]")
            XCTAssertTrue(got == texts, "[\(engine)] a stored event differs from what was sent")
        }
    }

    func testSSEResponseHeadersAndImmediateOpeningBytes() throws {
        try onEachEngine { broker, _ in
            let s = try broker.client.subscribe(uniqueChannel())
            XCTAssertEqual(s.head.status, 200)
            XCTAssertEqual(s.head.header("content-type"), "text/event-stream; charset=utf-8")
            XCTAssertEqual(s.head.header("cache-control"), "no-cache, no-transform")
            XCTAssertEqual(s.head.header("x-accel-buffering"), "no")
            // The retry line and a comment arrive before any event.
            let deadline = Clock.now() + 2
            while s.parser.retry == nil, Clock.now() < deadline { try s.pump(timeout: 0.2) }
            XCTAssertEqual(s.parser.retry, 2000)
            XCTAssertGreaterThanOrEqual(s.comments, 1)
        }
    }

    func testHealthReadyAndChannelInfo() throws {
        try onEachEngine { broker, _ in
            XCTAssertEqual(try broker.client.request("GET", "/healthz").status, 200)
            XCTAssertEqual(try broker.client.request("GET", "/readyz").status, 200)
            let ch = uniqueChannel()
            let sub = try broker.client.subscribe(ch)
            defer { _ = sub }
            let ids = try broker.publishNumbered(ch, count: 3)
            let info = try JSONParser.parse(broker.client.request("GET", "/v1/channels/\(ch)").body)
            XCTAssertEqual(info["last_id"]?.stringValue, ids[2])
            XCTAssertEqual(info["length"], .number("3"))
            XCTAssertEqual(info["final"], .bool(false))
            XCTAssertEqual(info["subscribers"], .number("1"))
            let metrics = try broker.client.request("GET", "/metrics")
            XCTAssertTrue(metrics.text.contains("starling_events_published_total"))
        }
    }

    func testCORSPreflightAndAllowedOrigin() throws {
        try onEachEngine(["--cors-origin", "https://app.example"]) { broker, _ in
            let pre = try broker.client.request("OPTIONS", "/v1/channels/a/events", headers: [
                ("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type, last-event-id"),
            ])
            XCTAssertEqual(pre.status, 204)
            XCTAssertEqual(pre.header("access-control-allow-origin"), "https://app.example")
            let allowed = pre.header("access-control-allow-headers")?.lowercased() ?? ""
            for h in ["content-type", "authorization", "last-event-id"] { XCTAssertTrue(allowed.contains(h), allowed) }
            let sub = try broker.client.subscribe(uniqueChannel(), headers: [("Origin", "https://app.example")])
            XCTAssertEqual(sub.head.header("access-control-allow-origin"), "https://app.example")
            let pub = try broker.client.request("POST", "/v1/channels/a/events",
                                                headers: [("Origin", "https://app.example"), ("Content-Type", "text/plain")],
                                                body: Array("x".utf8))
            XCTAssertEqual(pub.header("access-control-allow-origin"), "https://app.example")
            let other = try broker.client.request("OPTIONS", "/v1/channels/a/events", headers: [("Origin", "https://evil.example")])
            XCTAssertNil(other.header("access-control-allow-origin"), "a disallowed origin gets no CORS headers")
        }
    }

    func testPlainTextAndNDJSONPublish() throws {
        try onEachEngine { broker, _ in
            let ch = uniqueChannel()
            let t = try broker.client.request("POST", "/v1/channels/\(ch)/events?event=preview",
                                              headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array("line1\nline2".utf8))
            XCTAssertEqual(t.status, 200)
            let n = try broker.client.request("POST", "/v1/channels/\(ch)/events", headers: [("Content-Type", "application/x-ndjson")],
                                              body: Array("{\"data\":\"a\"}\n\n{\"data\":{\"pct\":40},\"event\":\"progress\"}\n".utf8))
            XCTAssertEqual(n.status, 200)
            XCTAssertEqual(try JSONParser.parse(n.body)["count"], .number("2"))
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            let got = try s.next(3)
            XCTAssertEqual(got.map(\.event), ["preview", "message", "progress"])
            XCTAssertEqual(got.map(\.data), ["line1\nline2", "a", "{\"pct\":40}"])
        }
    }
}

final class ExpectContinueTests: XCTestCase {
    func testExpect100ContinueIsAnsweredBeforeTheBody() throws {
        try onEachEngine { broker, _ in
            let c = try BlockingConnection(port: broker.port)
            try c.send("POST /v1/channels/\(uniqueChannel())/events HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
            XCTAssertEqual(try HTTPResponse.read(from: c, timeout: 0.5).status, 100, "no one-second stall for curl -T")
            try c.send("hi")
            XCTAssertEqual(try HTTPResponse.read(from: c).status, 200)
        }
    }
}
