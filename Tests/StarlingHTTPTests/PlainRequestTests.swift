// PlainRequest, the hand-written fast path for plain requests, against http_parser: on
// every request it takes, it must read what http_parser reads (method, URL, headers in
// order, Content-Length, body, keep-alive, where the request ends); the requests it
// leaves to http_parser are the ones whose reading it does not mirror.
import CHTTPParser
@testable import StarlingHTTP
import XCTest

/// What http_parser reads of the first request in some bytes.
private final class ParsedByHTTPParser {
    var method = ""
    var url: [UInt8] = []
    var headers: [([UInt8], [UInt8])] = []
    var lastWasValue = false
    var body: [UInt8] = []
    var keepAlive = false
    var contentLength: UInt64 = 0
    var end: Int?

    static func parse(_ bytes: [UInt8]) -> ParsedByHTTPParser? {
        let out = ParsedByHTTPParser()
        var settings = http_parser_settings()
        settings.on_url = { p, at, n in me(p).url += raw(at, n); return 0 }
        settings.on_header_field = { p, at, n in
            let m = me(p)
            if m.lastWasValue || m.headers.isEmpty { m.headers.append(([], [])) }
            m.lastWasValue = false
            m.headers[m.headers.count - 1].0 += raw(at, n)
            return 0
        }
        settings.on_header_value = { p, at, n in
            let m = me(p)
            m.lastWasValue = true
            m.headers[m.headers.count - 1].1 += raw(at, n)
            return 0
        }
        settings.on_headers_complete = { p in
            let m = me(p)
            m.method = String(cString: http_method_str(http_method(rawValue: UInt32(p!.pointee.method))))
            m.keepAlive = http_should_keep_alive(p) != 0
            m.contentLength = p!.pointee.content_length
            return 0
        }
        settings.on_body = { p, at, n in me(p).body += raw(at, n); return 0 }
        settings.on_message_complete = { p in
            me(p).end = 1
            http_parser_pause(p, 1)  // stop after the first request
            return 0
        }
        var parser = http_parser()
        http_parser_init(&parser, HTTP_REQUEST)
        return withExtendedLifetime(out) {
            parser.data = Unmanaged.passUnretained(out).toOpaque()
            let n = bytes.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: CChar.self) { http_parser_execute(&parser, &settings, $0.baseAddress, b.count) }
            }
            guard out.end != nil, http_errno(rawValue: UInt32(parser.http_errno)) == HPE_PAUSED else { return nil }
            out.end = n
            return out
        }
    }
}

private func me(_ p: UnsafeMutablePointer<http_parser>?) -> ParsedByHTTPParser {
    Unmanaged<ParsedByHTTPParser>.fromOpaque(p!.pointee.data).takeUnretainedValue()
}

private func raw(_ at: UnsafePointer<CChar>?, _ n: Int) -> [UInt8] {
    Array(UnsafeRawBufferPointer(start: at, count: n))
}

final class PlainRequestTests: XCTestCase {
    let limits = HTTPLimits()

    /// The fast path's reading of `text`'s first request, nil when it leaves it to http_parser.
    private func scan(_ bytes: [UInt8], limits: HTTPLimits? = nil) -> (PlainRequest, [([UInt8], [UInt8])])? {
        bytes.withUnsafeBytes { b in
            guard let r = PlainRequest.scan(b, from: 0, limits: limits ?? self.limits) else { return nil }
            var headers: [([UInt8], [UInt8])] = []
            r.forEachHeader(in: b) { headers.append((Array($0), Array($1))) }
            return (r, headers)
        }
    }

    /// Asserts that when the fast path takes `bytes`, it reads them as http_parser does.
    private func assertAgrees(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> Bool {
        guard let (r, headers) = scan(bytes) else { return false }
        guard let h = ParsedByHTTPParser.parse(bytes) else {
            XCTFail("the fast path took a request http_parser refuses: \(String(decoding: bytes, as: UTF8.self).debugDescription)", file: file, line: line)
            return true
        }
        let what = String(decoding: bytes, as: UTF8.self).debugDescription
        XCTAssertEqual(r.method, h.method, what, file: file, line: line)
        XCTAssertEqual(Array(bytes[r.url]), h.url, what, file: file, line: line)
        XCTAssertEqual(headers.map(\.0), h.headers.map(\.0), what, file: file, line: line)
        XCTAssertEqual(headers.map(\.1), h.headers.map(\.1), what, file: file, line: line)
        XCTAssertEqual(Array(bytes[r.body]), h.body, what, file: file, line: line)
        XCTAssertEqual(r.body.upperBound, h.end, what, file: file, line: line)
        XCTAssertTrue(h.keepAlive, what, file: file, line: line)
        XCTAssertEqual(UInt64(r.contentLength), h.contentLength == UInt64.max ? 0 : h.contentLength, what, file: file, line: line)
        return true
    }

    static let publish = Array("POST /v1/channels/c-17/events HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"data\":\"hello\"}".utf8)

    func testTakesThePlainShapesAndReadsThemAsHTTPParserDoes() {
        let plain = [
            String(decoding: Self.publish, as: UTF8.self),
            "GET /v1/channels/a/events?lastEventId=1-0&x=%41+b HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "POST /v1/events HTTP/1.1\r\nhost:h\r\ncontent-length:0\r\n\r\n",
            "POST /x HTTP/1.1\r\nX-A:  \t spaced\tinside value\r\nX-B: 1\r\nContent-Length: 003\r\n\r\nabc",
            "POST /x HTTP/1.1\r\nAuthorization: Bearer eyJ.a-b_c~d\r\nLast-Event-ID: 5-0\r\nStarling-Lease: 30000\r\nContent-Length: 2\r\n\r\n{}",
        ]
        for text in plain {
            XCTAssertTrue(assertAgrees(Array(text.utf8)), "the fast path should take \(text.debugDescription)")
        }
    }

    /// What the handler's fast lane reads of the headers (PlainRequestBytes): whether all
    /// are common client headers, the Content-Type, and the Authorization (a worker's token
    /// is a common header; a second one sends the request the general way).
    func testTellsWhetherOnlyCommonHeadersWereSent() {
        let token = "Bearer " + String(repeating: "eyJhbGciOi.", count: 24) + "x-y_z"
        let cases: [(String, Bool, String?, String?)] = [
            (String(decoding: Self.publish, as: UTF8.self), true, "application/json", nil),
            ("POST /x HTTP/1.1\r\nhOST: h\r\nuser-agent: curl/8\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nCONTENT-TYPE: text/plain\r\nContent-Length: 0\r\n\r\n",
             true, "text/plain", nil),
            ("GET / HTTP/1.1\r\n\r\n", true, nil, nil),
            ("POST /x HTTP/1.1\r\nHost: h\r\nX-Trace: 1\r\nContent-Length: 0\r\n\r\n", false, nil, nil),
            ("POST /x HTTP/1.1\r\nOrigin: http://a\r\nContent-Type: application/json\r\n\r\n", false, "application/json", nil),
            ("POST /x HTTP/1.1\r\nStarling-Lease: 30\r\nContent-Type: application/json\r\n\r\n", false, "application/json", nil),
            ("POST /x HTTP/1.1\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n\r\n", false, "application/json", nil),
            ("POST /x HTTP/1.1\r\nUser-Agentx: 1\r\n\r\n", false, nil, nil),
            ("POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", false, nil, nil),
            ("POST /x HTTP/1.1\r\nHost: h\r\nAuthorization: \(token)\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n",
             true, "application/json", token),
            ("POST /x HTTP/1.1\r\nauthorization:\t\(token)\r\n\r\n", true, nil, token),
            ("POST /x HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", false, nil, "a"),
            ("POST /x HTTP/1.1\r\nAuthorizations: a\r\n\r\n", false, nil, nil),
        ]
        for (text, common, type, authorization) in cases {
            XCTAssertTrue(assertAgrees(Array(text.utf8)), text.debugDescription)
            Array(text.utf8).withUnsafeBytes { b in
                guard let r = PlainRequest.scan(b, from: 0, limits: limits) else { return XCTFail("not plain: \(text.debugDescription)") }
                let v = r.bytes(in: b)
                XCTAssertEqual(v.onlyCommonHeaders, common, text.debugDescription)
                XCTAssertEqual(v.contentType.map { String(decoding: $0, as: UTF8.self) }, type, text.debugDescription)
                XCTAssertEqual(v.authorization.map { String(decoding: $0, as: UTF8.self) }, authorization, text.debugDescription)
            }
        }
    }

    /// Header values are scanned eight bytes a step: a byte that is not printable ASCII at
    /// any offset of a long value is still seen (a tab is kept; the rest go to http_parser).
    func testLongValuesAreCheckedAtEveryOffset() {
        let value = Array(String(repeating: "abcdefgh", count: 5).utf8)
        for bad: UInt8 in [0x09, 0x7F, 0x80, 0x00, 0x1F, 0x0A, 0xFF] {
            for at in 1..<(value.count - 1) {
                var v = value
                v[at] = bad
                let bytes = Array("GET /x HTTP/1.1\r\nAuthorization: ".utf8) + v + Array("\r\nHost: h\r\n\r\n".utf8)
                let taken = assertAgrees(bytes)
                XCTAssertEqual(taken, bad == 0x09, "byte \(bad) at \(at)")
            }
        }
    }

    func testLeavesEverythingElseToHTTPParser() {
        let other = [
            "PUT /x HTTP/1.1\r\n\r\n",                                   // another method
            "GET /x HTTP/1.0\r\n\r\n",                                   // another version
            "GET http://h/x HTTP/1.1\r\n\r\n",                           // absolute form
            "\r\nGET /x HTTP/1.1\r\n\r\n",                               // CRLF between requests
            "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
            "GET /x HTTP/1.1\r\nconnection: keep-alive\r\n\r\n",
            "GET /x HTTP/1.1\r\nProxy-Connection: close\r\n\r\n",
            "GET /x HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab",
            "POST /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\nab",
            "POST /x HTTP/1.1\r\nContent-Length: 1234567890\r\n\r\n",
            "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc",          // body not all read yet
            "POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r",               // head not all read yet
            "GET /x HTTP/1.1\r\nX-A: trailing \r\n\r\n",
            "GET /x HTTP/1.1\r\nX-A:\r\n\r\n",                           // empty value
            "GET /x HTTP/1.1\r\nX_A: 1\r\n\r\n",                         // a token byte beyond [A-Za-z0-9-]
            "GET /x HTTP/1.1\r\nX-A: caf\u{e9}\r\n\r\n",                 // obs-text
            "GET /x HTTP/1.1\r\nX-A: 1\n\r\n",                           // bare LF
            "GET /x HTTP/1.1\r\n X-A: 1\r\n\r\n",                        // obs-fold
            "GET /a#b HTTP/1.1\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
        ]
        for text in other {
            XCTAssertNil(scan(Array(text.utf8)).map { _ in true }, "the fast path should leave \(text.debugDescription) to http_parser")
        }
    }

    func testLimitsAreLeftToHTTPParser() {
        var small = HTTPLimits()
        small.maxURLBytes = 8
        XCTAssertNil(scan(Array("GET /123456789 HTTP/1.1\r\n\r\n".utf8), limits: small).map { _ in true })
        XCTAssertNotNil(scan(Array("GET /1234567 HTTP/1.1\r\n\r\n".utf8), limits: small).map { _ in true })
        small = HTTPLimits()
        small.maxHeadBytes = 20
        XCTAssertNil(scan(Array("GET /x HTTP/1.1\r\nX-Long: 0123456789abc\r\n\r\n".utf8), limits: small).map { _ in true })
        small = HTTPLimits()
        small.maxBodyBytes = 2
        XCTAssertNil(scan(Array("POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".utf8), limits: small).map { _ in true })
    }

    /// Pipelined requests: each scan starts where the last one ended.
    func testScansPipelinedRequestsOneAfterAnother() {
        let two = Self.publish + Self.publish + Array("GET /".utf8)
        two.withUnsafeBytes { b in
            guard let first = PlainRequest.scan(b, from: 0, limits: limits),
                  let second = PlainRequest.scan(b, from: first.body.upperBound, limits: limits) else {
                return XCTFail("two pipelined plain requests")
            }
            XCTAssertEqual(second.body.upperBound, 2 * Self.publish.count)
            XCTAssertNil(PlainRequest.scan(b, from: second.body.upperBound, limits: limits).map { _ in true })
        }
    }

    /// Thousands of one-byte mutations of plain requests: whatever the fast path takes,
    /// http_parser reads the same way (deterministic, so a failure repeats).
    func testMutatedRequestsAgreeWithHTTPParser() {
        let worker = "POST /v1/channels/c/events HTTP/1.1\r\nAuthorization: Bearer \(String(repeating: "eyJ0eXAi.", count: 8))\r\n"
            + "Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"data\":\"a\"}"
        let seeds = [Self.publish, Array("GET /v1/channels/a/events HTTP/1.1\r\nHost: h\r\nLast-Event-ID: 1-0\r\n\r\n".utf8),
                     Array(worker.utf8)]
        let alphabet: [UInt8] = Array(" \t\r\n:/?#%-_.~0123456789AZaz\u{7F}".utf8) + [0x00, 0x80, 0xC3, 0xE9]
        var rng = SplitMix(seed: 15)
        var taken = 0, tried = 0
        for seed in seeds {
            for _ in 0..<3_000 {
                var b = seed
                for _ in 0...Int(rng.next() % 2) {
                    let at = Int(rng.next() % UInt64(b.count))
                    switch rng.next() % 3 {
                    case 0: b[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                    case 1: b.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                    default: b.remove(at: at)
                    }
                }
                tried += 1
                if assertAgrees(b) { taken += 1 }
            }
        }
        // Both sides of the comparison must be exercised.
        XCTAssertGreaterThan(taken, tried / 20)
        XCTAssertLessThan(taken, tried)
    }
}

/// A small deterministic generator (SplitMix64).
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
