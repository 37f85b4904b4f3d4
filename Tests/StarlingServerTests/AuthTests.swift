// JWT authorization over real sockets (SPEC §7): 401 without a valid token, 403 outside
// the claims, on publish and subscribe; the query-string token for EventSource; a
// subscription closed with starling.expired when its token runs out.
import Foundation
import StarlingAuth
import StarlingClient
import StarlingCore
import XCTest

final class AuthTests: XCTestCase {
    let secret = "test-secret-0123456789abcdef-0123456789"
    var now: Int { Int(Date().timeIntervalSince1970) }

    func token(publish: [String] = [], subscribe: [String] = [], exp: Int? = nil, nbf: Int? = nil, key: String? = nil) throws -> String {
        try TokenSigner(hmacSecret: key ?? secret).token(publish: publish, subscribe: subscribe,
                                                         expiresAt: exp ?? now + 600, notBefore: nbf)
    }

    func publish(_ b: BrokerProcess, _ ch: String, token: String?) throws -> HTTPResponse {
        var h = [("Content-Type", "text/plain")]
        if let token { h.append(("Authorization", "Bearer \(token)")) }
        return try b.client.request("POST", "/v1/channels/\(ch)/events", headers: h, body: Array("x".utf8))
    }

    func subscribeStatus(_ b: BrokerProcess, _ ch: String, token: String?, query: Bool = false) throws -> Int {
        if query { return try b.client.subscribe(ch, query: "?access_token=\(token ?? "")").head.status }
        return try b.client.subscribe(ch, headers: token.map { [("Authorization", "Bearer \($0)")] } ?? []).head.status
    }

    func testTokensAreCheckedOnPublishAndSubscribe() throws {
        try onEachEngine(["--jwt-secret", secret]) { b, engine in
            let ch = "chat.room1"
            // Missing, expired, not yet valid, wrong key, alg none: 401 on both sides.
            let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdGFybGluZyI6eyJwdWJsaXNoIjpbIioiXX19."
            let bad: [(String, String?)] = [
                ("missing", nil),
                ("expired", try token(publish: ["*"], subscribe: ["*"], exp: now - 120)),
                ("not yet valid", try token(publish: ["*"], subscribe: ["*"], nbf: now + 600)),
                ("wrong key", try token(publish: ["*"], subscribe: ["*"], key: "another-secret-0123456789abcdef-012345")),
                ("alg none", none),
            ]
            for (name, t) in bad {
                XCTAssertEqual(try publish(b, ch, token: t).status, 401, "[\(engine)] publish, \(name)")
                XCTAssertEqual(try subscribeStatus(b, ch, token: t), 401, "[\(engine)] subscribe, \(name)")
            }
            // Outside the claims: 403.
            let other = try token(publish: ["news.*"], subscribe: ["news.*"])
            XCTAssertEqual(try publish(b, ch, token: other).status, 403)
            XCTAssertEqual(try subscribeStatus(b, ch, token: other), 403)
            // Inside: allowed; a prefix pattern admits exactly its prefix.
            let chat = try token(publish: ["chat.*"], subscribe: ["chat.room1"])
            XCTAssertEqual(try publish(b, ch, token: chat).status, 200)
            XCTAssertEqual(try publish(b, "chat.other", token: chat).status, 200)
            XCTAssertEqual(try publish(b, "chatx", token: chat).status, 403)
            XCTAssertEqual(try subscribeStatus(b, ch, token: chat), 200)
            XCTAssertEqual(try subscribeStatus(b, "chat.other", token: chat), 403)
        }
    }

    func testQueryStringTokenWorksForASubscriberAndDeliversEvents() throws {
        try onEachEngine(["--jwt-secret", secret]) { b, _ in
            let ch = uniqueChannel()
            let t = try token(publish: [ch], subscribe: [ch])
            let s = try b.client.subscribe(ch, query: "?access_token=\(t)")
            XCTAssertEqual(s.head.status, 200)
            XCTAssertEqual(try publish(b, ch, token: t).status, 200)
            XCTAssertEqual(try s.next()?.data, "x")
            XCTAssertEqual(try subscribeStatus(b, ch, token: "garbage", query: true), 401)
        }
    }

    func testPublicSubscribeOpensChosenChannelsOnly() throws {
        try onEachEngine(["--jwt-secret", secret, "--public-subscribe", "public.*"]) { b, _ in
            XCTAssertEqual(try subscribeStatus(b, "public.news", token: nil), 200)
            XCTAssertEqual(try subscribeStatus(b, "private.news", token: nil), 401)
            XCTAssertEqual(try publish(b, "public.news", token: nil).status, 401, "public means subscribe, not publish")
        }
    }

    func testMultiChannelPublishAndMultiplexedSubscribeAreCheckedPerChannel() throws {
        try onEachEngine(["--jwt-secret", secret]) { b, _ in
            let t = try token(publish: ["a.*"], subscribe: ["a.*"])
            let body = "[{\"channel\":\"a.1\",\"data\":1},{\"channel\":\"b.1\",\"data\":2}]"
            let r = try b.client.request("POST", "/v1/events", headers: [("Content-Type", "application/json"), ("Authorization", "Bearer \(t)")],
                                         body: Array(body.utf8))
            XCTAssertEqual(r.status, 403)
            let c = try BlockingConnection(port: b.port)
            try c.send(StarlingHTTPClient.format("GET", "/v1/events?channel=a.1&channel=b.1&access_token=\(t)"))
            XCTAssertEqual(try HTTPResponse.read(from: c).status, 403)
        }
    }

    func testStreamEndsWithNoticeWhenItsTokenExpires() throws {
        try onEachEngine(["--jwt-secret", secret]) { b, _ in
            let ch = uniqueChannel()
            // exp 1 s ahead; the broker's leeway (a few seconds) is added before it acts.
            let t = try token(subscribe: [ch], exp: now + 1)
            let s = try b.client.subscribe(ch, headers: [("Authorization", "Bearer \(t)")])
            XCTAssertEqual(s.head.status, 200)
            let notice = try s.next(timeout: 10)
            XCTAssertEqual(notice?.event, "starling.expired")
            XCTAssertTrue(try s.connection.waitForClose(timeout: 3))
        }
    }

    func testOpenModeAllowsEverything() throws {
        try onEachEngine { b, _ in
            XCTAssertEqual(try publish(b, uniqueChannel(), token: nil).status, 200)
        }
    }
}
