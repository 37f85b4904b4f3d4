// RequestReader's two ways in: http_parser's callbacks (URL, then each name and value in
// pieces) and the plain reader's whole head (URL and header lines in one go) must gather
// the same head: the same target, the same headers in order, the same lookups, the same
// limits.
@testable import StarlingHTTP
import XCTest

final class RequestReaderTests: XCTestCase {
    private let heads: [(url: String, lines: [(String, String)])] = [
        ("/v1/channels/a/events", [("Host", "127.0.0.1:8080"), ("Content-Type", "application/json"), ("Content-Length", "12")]),
        ("/v1/channels/b?lastEventId=1-0", []),
        ("/", [("X-Empty-Looking", "a"), ("ACCEPT", "text/event-stream"), ("Accept", "second"), ("Starling-Lease", "30")]),
        ("/x", [("A", "b:c: d"), ("Mixed-Case-NAME", "Value With Spaces"), ("Tabbed", "v")]),
    ]

    /// The header lines as sent, each with `blank` after the colon, ending with a CRLF.
    private func lines(_ headers: [(String, String)], blank: String) -> [UInt8] {
        Array(headers.map { "\($0.0):\(blank)\($0.1)\r\n" }.joined().utf8)
    }

    private func byCallbacks(_ url: String, _ headers: [(String, String)], split: Int) -> Request? {
        var reader = RequestReader(limits: HTTPLimits())
        reader.beginHead(nowMs: 0)
        func pieces(_ s: String, _ each: (UnsafeRawBufferPointer) -> HTTPError?) -> HTTPError? {
            // In pieces of `split` bytes, as a read may cut them.
            let b = Array(s.utf8)
            var at = 0
            repeat {
                let end = min(b.count, at + split)
                if let e = b[at..<end].withUnsafeBytes({ each($0) }) { return e }
                at = end
            } while at < b.count
            return nil
        }
        XCTAssertNil(pieces(url) { reader.appendURL($0) })
        for (name, value) in headers {
            XCTAssertNil(pieces(name) { reader.appendHeaderField($0) })
            XCTAssertNil(pieces(value) { reader.appendHeaderValue($0) })
        }
        return reader.completeHead(method: "POST", keepAlive: true)
    }

    private func byPlainHead(_ url: String, _ headers: [(String, String)], blank: String) -> Request? {
        var reader = RequestReader(limits: HTTPLimits())
        reader.beginHead(nowMs: 0)
        let u = Array(url.utf8), l = lines(headers, blank: blank)
        let error = u.withUnsafeBytes { ub in l.withUnsafeBytes { lb in reader.appendPlainHead(url: ub, lines: lb) } }
        XCTAssertNil(error)
        return reader.completeHead(method: "POST", keepAlive: true)
    }

    func testPlainHeadGathersWhatTheCallbacksGather() throws {
        for (url, headers) in heads {
            for split in [1, 3, 1000] {
                for blank in ["", " ", "\t ", "  "] {
                    let a = try XCTUnwrap(byCallbacks(url, headers, split: split))
                    let b = try XCTUnwrap(byPlainHead(url, headers, blank: blank))
                    XCTAssertEqual(a.target, b.target)
                    XCTAssertEqual(a.path, b.path)
                    XCTAssertEqual(a.query.map { [$0.0, $0.1] }, b.query.map { [$0.0, $0.1] })
                    XCTAssertEqual(a.headers.map { [$0.0, $0.1] }, b.headers.map { [$0.0, $0.1] }, "\(url) \(blank.utf8.count)")
                    XCTAssertEqual(b.headers.map(\.0), headers.map { $0.0.lowercased() })
                    for name in ["host", "content-type", "accept", "a", "mixed-case-name", "missing", "starling-lease"] {
                        XCTAssertEqual(a.header(name), b.header(name), name)
                    }
                    XCTAssertEqual(b.hasHeader("accept"), headers.contains { $0.0.lowercased() == "accept" })
                    b.withPath { p in a.withPath { XCTAssertEqual(Array($0), Array(p)) } }
                }
            }
        }
    }

    func testPlainHeadKeepsTheHeadLimit() {
        var limits = HTTPLimits()
        limits.maxHeadBytes = 64
        var reader = RequestReader(limits: limits)
        reader.beginHead(nowMs: 0)
        let u = Array("/v1/channels/a/events".utf8)
        let l = lines([("Host", String(repeating: "h", count: 30)), ("X", String(repeating: "x", count: 20))], blank: " ")
        let error = u.withUnsafeBytes { ub in l.withUnsafeBytes { lb in reader.appendPlainHead(url: ub, lines: lb) } }
        XCTAssertEqual(error?.status, 431)
    }
}
