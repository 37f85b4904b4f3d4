// SSE framing end to end: multi-line data, multi-byte UTF-8, event names and IDs as a
// browser's parser sees them, even when the bytes arrive split across reads.
import StarlingClient
import StarlingCore
import XCTest

final class FramingTests: XCTestCase {
    static let samples = [
        "one line",
        "two\nlines",
        "crlf\r\nand cr\rend",
        "مرحبا بالعالم",  // Arabic
        "emoji 🚀🧑🏽‍💻 done",
        "",
        "trailing newline\n",
    ]

    func testDataSurvivesTheWireExactly() throws {
        try onEachEngine { broker, engine in
            let ch = uniqueChannel()
            var ids: [String] = []
            for (k, text) in Self.samples.enumerated() {
                ids.append(try broker.client.publish(ch, data: text, event: "tok.\(k):x-y_z"))
            }
            let s = try broker.client.subscribe(ch, lastEventID: "earliest")
            let got = try s.next(Self.samples.count)
            // CR and CRLF come back as LF: SSE has one line break in data, LF.
            let expected = Self.samples.map { $0.replacingCRs() }
            XCTAssertEqual(got.map(\.data), expected, "[\(engine)]")
            XCTAssertEqual(got.map(\.event), Self.samples.indices.map { "tok.\($0):x-y_z" })
            XCTAssertEqual(got.map { $0.id! }, ids)
        }
    }

    func testEventBytesSplitAtEveryBoundaryParseTheSame() throws {
        try onEachEngine { broker, _ in
            let ch = uniqueChannel()
            for text in Self.samples { try broker.client.publish(ch, data: text, event: "e") }
            // Take the real bytes off the wire, then feed them in every two-way split.
            let c = try BlockingConnection(port: broker.port)
            try c.send(StarlingHTTPClient.format("GET", "/v1/channels/\(ch)/events", headers: [("Last-Event-ID", "earliest")]))
            _ = try HTTPResponse.read(from: c)
            try c.read(until: { bytes in
                var p = SSEParser()
                return p.feed(bytes).count == Self.samples.count
            }, timeout: 5)
            let wire = c.buffer
            var whole = SSEParser()
            let reference = whole.feed(wire)
            XCTAssertEqual(reference.count, Self.samples.count)
            for cut in 0...wire.count {
                var p = SSEParser()
                let got = p.feed(wire[..<cut]) + p.feed(wire[cut...])
                XCTAssertEqual(got, reference, "split at byte \(cut)")
            }
            // And one byte at a time.
            var p = SSEParser()
            var oneByOne: [SSEMessage] = []
            for b in wire { oneByOne += p.feed([b]) }
            XCTAssertEqual(oneByOne, reference)
        }
    }
}

extension String {
    func replacingCRs() -> String {
        var out = ""
        var previousCR = false
        for u in unicodeScalars {
            if u == "\r" { out += "\n"; previousCR = true; continue }
            if u == "\n", previousCR { previousCR = false; continue }
            previousCR = false
            out.unicodeScalars.append(u)
        }
        return out
    }
}
