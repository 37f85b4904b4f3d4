import StarlingCore
import XCTest

final class SSECodecTests: XCTestCase {
    func testEncoderSplitsEveryKindOfLineBreak() {
        let bytes = SSEEncoder.event(id: "1-0", name: "tok", data: "a\nb\r\nc\rd")
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self), "id: 1-0\nevent: tok\ndata: a\ndata: b\ndata: c\ndata: d\n\n")
        XCTAssertEqual(String(decoding: SSEEncoder.event(id: nil, name: "message", data: ""), as: UTF8.self), "data: \n\n")
    }

    func testParserFollowsTheWHATWGRules() {
        var p = SSEParser()
        let text = "\u{FEFF}: comment\nretry: 1500\nid: 7\nevent: x\ndata:no-space\ndata:  two\n\nid\ndata: y\n\nevent: lonely\n\n"
        let got = p.feed(Array(text.utf8))
        XCTAssertEqual(got, [SSEMessage(id: "7", event: "x", data: "no-space\n two"), SSEMessage(id: "", event: "message", data: "y")])
        XCTAssertEqual(p.retry, 1500)
        XCTAssertEqual(p.comments, 1)
    }

    func testCRLFSplitAcrossChunksIsOneLineBreak() {
        var p = SSEParser()
        var got = p.feed(Array("data: a\r".utf8))
        got += p.feed(Array("\n\r".utf8))
        got += p.feed(Array("\ndata: b\r\r".utf8))
        XCTAssertEqual(got.map(\.data), ["a", "b"])
    }

    func testMultiByteCharacterSplitAcrossChunks() {
        let bytes = Array("data: مرحبا 🚀\n\n".utf8)
        for cut in 1..<bytes.count {
            var p = SSEParser()
            XCTAssertEqual((p.feed(bytes[..<cut]) + p.feed(bytes[cut...])).first?.data, "مرحبا 🚀", "cut \(cut)")
        }
    }

    func testIDWithNULIsIgnored() {
        var p = SSEParser()
        let got = p.feed(Array("id: 1\n\nid: a\u{0}b\ndata: x\n\n".utf8))
        XCTAssertEqual(got.first?.id, "1")
    }
}
