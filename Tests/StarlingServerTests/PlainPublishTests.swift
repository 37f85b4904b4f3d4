// The publish fast lane (PlainPublish.swift): a plain JSON publish is taken from the read
// buffer with no Request made; anything else goes the general way. Both must give the
// same answers, in request order, and store the same events.
import Foundation
import StarlingAuth
import StarlingClient
import StarlingCore
import XCTest

final class PlainPublishTests: XCTestCase {
    private func post(_ path: String, _ json: String, extra: [(String, String)] = []) -> [UInt8] {
        StarlingHTTPClient.format("POST", path, headers: [("Content-Type", "application/json")] + extra, body: Array(json.utf8))
    }

    private func text(_ path: String, _ body: [UInt8]) -> [UInt8] {
        StarlingHTTPClient.format("POST", path, headers: [("Content-Type", "text/plain")], body: body)
    }

    /// Fast-lane publishes (JSON and text) and requests the lane leaves alone (another
    /// header, a lease, a GET, a query, a body it does not read, bad bodies), all in one write: every answer in request
    /// order, the stored events exactly those answered 200, with their names.
    func testFastLaneAndGeneralRequestsInOneWriteAreAnsweredInOrder() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let path = "/v1/channels/\(ch)/events"
            let c = try BlockingConnection(port: broker.port)
            var bytes: [UInt8] = []
            bytes += post(path, "{\"data\":\"a\"}")                                        // lane
            bytes += post(path, "{\"data\":\"b\"}", extra: [("X-Trace", "1")])             // general: another header
            bytes += StarlingHTTPClient.format("GET", "/healthz")                          // general: a GET
            bytes += post(path, "{\"data\":}")                                             // lane declines: bad JSON
            bytes += post(path, "{\"event\":\"tok\",\"data\":{\"n\":5}}")                  // lane
            bytes += post(path, "{\"data\":\"f\"}", extra: [("Starling-Lease", "30")])     // general: a lease
            bytes += post(path, "{ \"data\" : \"g\" }")                                    // lane declines: spaces
            bytes += post(path, "{\"data\":\"h\"}")                                        // lane
            bytes += text(path, Array("plain i".utf8))                                    // lane: text
            bytes += text(path, [0x61, 0xFF])                                             // lane declines: bad UTF-8
            bytes += text(path + "?event=note", Array("j".utf8))                          // general: a query
            try c.send(bytes)
            let expected = [200, 200, 200, 400, 200, 200, 200, 200, 200, 400, 200]
            var ids: [EventID] = []
            for (k, status) in expected.enumerated() {
                let r = try HTTPResponse.read(from: c)
                XCTAssertEqual(r.status, status, "[\(engine)] answer #\(k + 1): \(r.text)")
                if k == 2 { XCTAssertEqual(r.text, "{\"status\":\"ok\"}", "[\(engine)] the GET's answer in its place") }
                if k == 3 { XCTAssertEqual(errorCode(r), "bad_json", "[\(engine)]") }
                if k == 9 { XCTAssertEqual(errorCode(r), "bad_utf8", "[\(engine)]") }
                if status == 200, k != 2 {
                    let v = try JSONParser.parse(r.body)
                    XCTAssertEqual(v["count"], .number("1"), "[\(engine)] #\(k + 1)")
                    let id = EventID(v["first"]!.stringValue!)!
                    XCTAssertEqual(v["last"]?.stringValue, v["first"]?.stringValue)
                    if let last = ids.last { XCTAssertGreaterThan(id, last, "[\(engine)] answers in request order") }
                    ids.append(id)
                }
            }
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            let got = try s.next(8)
            XCTAssertEqual(got.map(\.data), ["a", "b", "{\"n\":5}", "f", "g", "h", "plain i", "j"], "[\(engine)]")
            XCTAssertEqual(got.map(\.event), ["message", "message", "tok", "message", "message", "message", "message", "note"],
                           "[\(engine)]")
            XCTAssertEqual(got.map(\.id), ids.map { "\($0)" }, "[\(engine)] each answer names its event")
        }
    }

    /// The lane makes each channel's name once (ChannelNames): names that share their
    /// length and first and last eight bytes share a slot there, and must still each get
    /// their own events, alternately published, in one write and one at a time.
    func testChannelsWhoseNamesShareASlotKeepTheirOwnEvents() throws {
        try onEachEngine { broker, engine in
            let tag = uniqueChannel().suffix(8)
            let names = (0..<3).map { "aaaaaaaa-\(tag)-\($0)-bbbbbbbb" }
            let c = try BlockingConnection(port: broker.port)
            var bytes: [UInt8] = []
            for round in 0..<4 {
                for (k, name) in names.enumerated() { bytes += post("/v1/channels/\(name)/events", "{\"data\":\"\(k)-\(round)\"}") }
            }
            try c.send(bytes)
            for _ in 0..<12 { XCTAssertEqual(try HTTPResponse.read(from: c).status, 200, "[\(engine)]") }
            for (k, name) in names.enumerated() {
                XCTAssertEqual(try broker.raw(post("/v1/channels/\(name)/events", "{\"data\":\"\(k)-4\"}")).status, 200)
            }
            for (k, name) in names.enumerated() {
                let s = try broker.client.subscribe(name, lastEventID: "earliest")
                XCTAssertEqual(try s.next(5).map(\.data), (0...4).map { "\(k)-\($0)" }, "[\(engine)] \(name)")
            }
        }
    }

    /// The lane's answer is the general path's, header for header; a failure too (a
    /// publish after the final event), and both count in /metrics.
    func testFastLaneAnswersAndCountsAsTheGeneralPathDoes() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            let path = "/v1/channels/\(ch)/events"
            let published = try broker.metric("starling_publish_requests_total")
            let lane = try broker.raw(post(path, "{\"data\":\"x\"}"))
            let general = try broker.raw(post(path, "{\"data\":\"y\"}", extra: [("X-Trace", "1")]))
            XCTAssertEqual(lane.status, 200, "[\(engine)] \(lane.text)")
            XCTAssertEqual(lane.headers.map { "\($0.0): \($0.1)" }, general.headers.map { "\($0.0): \($0.1)" }, "[\(engine)]")
            XCTAssertEqual(try broker.metric("starling_publish_requests_total"), published + 2, "[\(engine)]")

            try broker.client.publish(ch, data: "done", event: "done", final: true)
            let laneLate = try broker.raw(post(path, "{\"data\":\"late\"}"))
            let generalLate = try broker.raw(post(path, "{\"data\":\"late\"}", extra: [("X-Trace", "1")]))
            XCTAssertEqual(laneLate.status, 409, "[\(engine)]")
            XCTAssertEqual(errorCode(laneLate), "channel_final", "[\(engine)]")
            XCTAssertEqual(laneLate.text, generalLate.text, "[\(engine)]")
            XCTAssertEqual(laneLate.headers.map { "\($0.0): \($0.1)" }, generalLate.headers.map { "\($0.0): \($0.1)" }, "[\(engine)]")
            let counts = try broker.metricsText().split(separator: "\n").filter { $0.hasPrefix("starling_responses_total{route=\"publish\"") }
            XCTAssertTrue(counts.contains { $0.hasSuffix("status=\"4xx\"} 2") }, "[\(engine)] \(counts)")
        }
    }

    /// With auth, a worker's publish carries its token: the lane takes those the token
    /// allows; every other one (no token, a forged, expired or other channel's one, another
    /// scheme, the token twice) is read the general way and refused there, 401 or 403. In one
    /// write: every answer in its place, and exactly the allowed events stored.
    func testTokensDecideAsOnTheGeneralPath() throws {
        let secret = "lane-secret-0123456789abcdef-0123456789"
        let now = Int(Date().timeIntervalSince1970)
        func token(_ publish: [String], exp: Int? = nil, key: String? = nil) throws -> String {
            try TokenSigner(hmacSecret: key ?? secret).token(publish: publish, subscribe: ["*"], expiresAt: exp ?? now + 600)
        }
        try onEachEngine(["--jwt-secret", secret]) { broker, engine in
            let ch = uniqueChannel()
            let path = "/v1/channels/\(ch)/events"
            let worker = try token([ch])
            func bearer(_ t: String) -> [(String, String)] { [("Authorization", "Bearer \(t)")] }
            let requests: [([(String, String)], Int)] = [
                (bearer(worker), 200),                                                      // lane
                ([], 401),                                                                  // no token
                (bearer(try token(["other-*"])), 403),                                      // another channel's
                (bearer(try token([ch], key: "another-secret-0123456789abcdef-01234")), 401), // forged
                (bearer(try token([ch], exp: now - 120)), 401),                             // expired
                ([("Authorization", "Basic dXNlcjpwYXNz")], 401),                           // another scheme
                ([("Authorization", "bearer   \(worker)  ")], 200),                         // lane, spaced
                (bearer("x") + bearer(worker), 401),                                        // twice: general, takes the first
                (bearer(worker), 200),                                                      // lane
            ]
            let c = try BlockingConnection(port: broker.port)
            var bytes: [UInt8] = []
            for (k, (headers, _)) in requests.enumerated() { bytes += post(path, "{\"data\":\"\(k)\"}", extra: headers) }
            try c.send(bytes)
            for (k, (_, status)) in requests.enumerated() {
                let r = try HTTPResponse.read(from: c)
                XCTAssertEqual(r.status, status, "[\(engine)] #\(k): \(r.text)")
            }
            let s = try broker.client.subscribe(ch, lastEventID: "earliest", headers: bearer(worker))
            XCTAssertEqual(try s.next(3).map(\.data), ["0", "6", "8"], "[\(engine)]")
            XCTAssertEqual(try broker.raw(post(path, "{\"data\":\"9\"}", extra: bearer(worker))).status, 200)
            XCTAssertEqual(try s.next(1).map(\.data), ["9"], "[\(engine)] nothing else was stored between")
        }
    }

    /// Workers with a token each (claims for their own channel only), in turn on one
    /// connection, each publishing on every worker's channel: allowed on its own, refused
    /// (403) on the 63 others, however the tokens fall into the lane's slots (64 tokens in
    /// 256 slots: some share one, all but certainly).
    func testManyWorkersTokensKeepTheirOwnGrants() throws {
        let secret = "lane-secret-0123456789abcdef-0123456789"
        try onEachEngine(["--jwt-secret", secret, "--log-level", "error"]) { broker, engine in
            let tag = uniqueChannel()
            let channels = (0..<64).map { "\(tag)-\($0)" }
            let tokens = try channels.map { try TokenSigner(hmacSecret: secret).token(publish: [$0], subscribe: [$0]) }
            let c = try BlockingConnection(port: broker.port)
            for k in channels.indices {
                var bytes: [UInt8] = []
                for ch in channels {
                    bytes += post("/v1/channels/\(ch)/events", "{\"data\":\"\(k)\"}", extra: [("Authorization", "Bearer \(tokens[k])")])
                }
                try c.send(bytes)
                let statuses = try channels.map { _ in try HTTPResponse.read(from: c).status }
                XCTAssertEqual(statuses, channels.indices.map { $0 == k ? 200 : 403 }, "[\(engine)] token \(k)")
            }
        }
    }

    /// The lane remembers a token's grant for the second it was checked in (LaneTokens): a
    /// worker publishing on one connection is still refused once its token has lapsed (its
    /// `exp` plus the broker's 5 s of leeway), within a second of it, never before.
    func testALapsedTokenIsRefusedOnTheLaneToo() throws {
        let secret = "lane-secret-0123456789abcdef-0123456789"
        let exp = Int(Date().timeIntervalSince1970) + 1
        let t = try TokenSigner(hmacSecret: secret).token(publish: ["*"], subscribe: [], expiresAt: exp)
        let broker = try BrokerProcess(["--jwt-secret", secret])
        defer { broker.terminate() }
        let path = "/v1/channels/\(uniqueChannel())/events"
        let c = try BlockingConnection(port: broker.port)
        var refusedAt: Double?
        var accepted = 0
        while refusedAt == nil, Date().timeIntervalSince1970 < Double(exp) + 9 {
            try c.send(post(path, "{\"data\":\"x\"}", extra: [("Authorization", "Bearer \(t)")]))
            let r = try HTTPResponse.read(from: c)
            if r.status == 200 { accepted += 1 } else {
                XCTAssertEqual(r.status, 401, r.text)
                refusedAt = Date().timeIntervalSince1970
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let lapse = Double(exp + 5)
        XCTAssertGreaterThan(accepted, 20, "accepted until the token lapsed")
        guard let refusedAt else { return XCTFail("still accepted 4 s after the token lapsed") }
        XCTAssertGreaterThanOrEqual(refusedAt, lapse - 0.05, "refused before the token lapsed")
        XCTAssertLessThan(refusedAt, lapse + 1.5, "refused long after the token lapsed")
    }
}
