// Every limit of SPEC §7 over a real socket: each bad request gets its status and a JSON
// error, and the broker keeps serving a subscriber meanwhile.
import Foundation
import StarlingClient
import StarlingCore
import XCTest

final class BadInputTests: XCTestCase {
    /// Sends `bad`, checks status and error code, then proves a live subscriber still works.
    private func expect(_ broker: BrokerProcess, _ bad: [UInt8], status: Int, code: String?,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let ch = uniqueChannel()
        let s = try broker.client.subscribe(ch)
        let r = try broker.raw(bad)
        XCTAssertEqual(r.status, status, r.text, file: file, line: line)
        if let code {
            XCTAssertEqual(errorCode(r), code, r.text, file: file, line: line)
            XCTAssertEqual(r.header("content-type"), "application/json", file: file, line: line)
        }
        try broker.client.publish(ch, data: "still-here")
        XCTAssertEqual(try s.next()?.data, "still-here", "the broker kept serving", file: file, line: line)
    }

    private func post(_ path: String, _ type: String?, _ body: [UInt8]) -> [UInt8] {
        StarlingHTTPClient.format("POST", path, headers: type.map { [("Content-Type", $0)] } ?? [], body: body)
    }

    func testOversizeHeadIs431() throws {
        try onEachEngine { b, _ in
            let big = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 20_000))\r\n\r\n"
            try expect(b, Array(big.utf8), status: 431, code: "head_too_large")
        }
    }

    func testLongURLIs414() throws {
        try onEachEngine { b, _ in
            let url = "/v1/channels/a/events?x=" + String(repeating: "b", count: 9000)
            try expect(b, Array("GET \(url) HTTP/1.1\r\nHost: x\r\n\r\n".utf8), status: 414, code: "url_too_long")
        }
    }

    func testBigBodyIs413() throws {
        try onEachEngine(["--max-body-bytes", "100000"]) { b, _ in
            let body = [UInt8](repeating: 0x61, count: 200_000)
            try expect(b, post("/v1/channels/a/events", "text/plain", body), status: 413, code: "body_too_large")
        }
    }

    func testOversizeEventIs413AndNamesIt() throws {
        try onEachEngine(["--max-event-bytes", "1000"]) { b, _ in
            let body = "[{\"data\":\"ok\"},{\"data\":\"\(String(repeating: "z", count: 2000))\"}]"
            let ch = uniqueChannel()
            try expect(b, post("/v1/channels/\(ch)/events", "application/json", Array(body.utf8)), status: 413, code: "event_too_large")
            let r = try b.raw(post("/v1/channels/\(ch)/events", "application/json", Array(body.utf8)))
            XCTAssertTrue(r.text.contains("[1]"), r.text)
            let info = try JSONParser.parse(b.client.request("GET", "/v1/channels/\(ch)").body)
            XCTAssertEqual(info["length"], .number("0"), "nothing of the batch was stored")
        }
    }

    func testBadJSONIs400WithWhere() throws {
        try onEachEngine { b, _ in
            try expect(b, post("/v1/channels/a/events", "application/json", Array("{\"data\": tru}".utf8)), status: 400, code: "bad_json")
            let r = try b.raw(post("/v1/channels/a/events", "application/json", Array("{\"data\": tru}".utf8)))
            XCTAssertTrue(r.text.contains("at byte 9"), r.text)
        }
    }

    func testBadElementOfBatchNamesItsIndexAndStoresNothing() throws {
        try onEachEngine { b, _ in
            let ch = uniqueChannel()
            let r = try b.client.publish(ch, json: "[{\"data\":1},{\"data\":2},{\"event\":\"starling.x\",\"data\":3}]")
            XCTAssertEqual(r.status, 400)
            XCTAssertTrue(r.text.contains("event [2]"), r.text)
            let info = try JSONParser.parse(b.client.request("GET", "/v1/channels/\(ch)").body)
            XCTAssertEqual(info["length"], .number("0"))
        }
    }

    func testBadUTF8Is400() throws {
        try onEachEngine { b, _ in
            try expect(b, post("/v1/channels/a/events", "text/plain", [0x68, 0x69, 0xC3, 0x28]), status: 400, code: "bad_utf8")
            try expect(b, post("/v1/channels/a/events", "application/json", Array("{\"data\":\"".utf8) + [0xFF] + Array("\"}".utf8)),
                       status: 400, code: "bad_json")
        }
    }

    func testBadChannelNameIs400() throws {
        try onEachEngine { b, _ in
            try expect(b, Array("GET /v1/channels/bad%20name/events HTTP/1.1\r\nHost: x\r\n\r\n".utf8), status: 400, code: "bad_channel")
            let long = String(repeating: "c", count: 201)
            try expect(b, Array("GET /v1/channels/\(long)/events HTTP/1.1\r\nHost: x\r\n\r\n".utf8), status: 400, code: "bad_channel")
        }
    }

    func testUnknownRouteIs404() throws {
        try onEachEngine { b, _ in
            try expect(b, Array("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".utf8), status: 404, code: "not_found")
        }
    }

    func testWrongMethodIs405WithAllow() throws {
        try onEachEngine { b, _ in
            try expect(b, Array("DELETE /v1/channels/a/events HTTP/1.1\r\nHost: x\r\n\r\n".utf8), status: 405, code: "method_not_allowed")
            let r = try b.raw("PUT /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            XCTAssertEqual(r.header("allow"), "GET")
        }
    }

    func testUnsupportedMediaTypeIs415() throws {
        try onEachEngine { b, _ in
            try expect(b, post("/v1/channels/a/events", "application/xml", Array("<a/>".utf8)), status: 415, code: "unsupported_media_type")
            try expect(b, post("/v1/channels/a/events", nil, Array("x".utf8)), status: 415, code: "unsupported_media_type")
        }
    }

    func testReservedEventNameIs400() throws {
        try onEachEngine { b, _ in
            try expect(b, post("/v1/channels/a/events", "application/json", Array("{\"event\":\"starling.gap\",\"data\":1}".utf8)),
                       status: 400, code: "bad_event")
        }
    }

    func testGarbageInsteadOfHTTPIs400() throws {
        try onEachEngine { b, _ in
            try expect(b, [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x0D, 0x0A, 0x0D, 0x0A], status: 400, code: "bad_request")
            try expect(b, Array("HELLO WORLD\r\n\r\n".utf8), status: 400, code: "bad_request")
        }
    }

    func testHalfSentHeadTimesOutWhileOthersAreServed() throws {
        try onEachEngine(["--head-timeout", "1"]) { b, _ in
            let ch = uniqueChannel()
            let s = try b.client.subscribe(ch)
            let slowloris = try BlockingConnection(port: b.port)
            try slowloris.send("GET /v1/channels/a/events HTTP/1.1\r\nHost: x\r\nX-A: ")
            try b.client.publish(ch, data: "served")
            XCTAssertEqual(try s.next()?.data, "served")
            let r = try HTTPResponse.read(from: slowloris, timeout: 3)
            XCTAssertEqual(r.status, 408)
            XCTAssertEqual(errorCode(r), "head_timeout")
            XCTAssertTrue(try slowloris.waitForClose(timeout: 3), "the slow socket is dropped")
            // A connection that sends nothing at all is dropped too.
            let silent = try BlockingConnection(port: b.port)
            XCTAssertTrue(try silent.waitForClose(timeout: 3))
        }
    }
}
