// The publish hot path's shortcuts give exactly what the general code gives: the quick
// reader of `{"data":…}` bodies against JSONParser + PublishBody.draft, the in-place SSE
// encoding against SSEEncoder.event.
@testable import StarlingCore
import XCTest

final class HotPathTests: XCTestCase {
    /// What the general path makes of a body (nil: it refuses it).
    private func general(_ body: String) -> EventDraft? {
        guard let value = try? JSONParser.parse(Array(body.utf8)), case .object = value else { return nil }
        return try? PublishBody.draft(from: value, limits: .init(maxEventBytes: 1 << 20), channelKey: false, place: "event")
    }

    func testQuickReaderAgreesWithTheGeneralPathOrStepsAside() {
        let bodies = [
            #"{"data":"hello"}"#, #"{"data":{"t":123,"seq":4,"pad":"xxxx"}}"#, #"{"event":"tok","data":"a"}"#,
            #"{"data":"a","event":"tok"}"#, #" { "data" : [1,-2.5e+3,true,false,null,{},[]] } "#, #"{"data":"é ✓"}"#,
            #"{"data":0}"#, #"{"data":-0.1E-2}"#, #"{"data":{"a":{"b":["c",{"d":null}]}}}"#, #"{"data":""}"#,
            // Shapes it must leave to the general path (or refuse the same way):
            #"{"data":"a\nb"}"#, #"{"data":{"a": 1}}"#, #"{"data":"\u00e9"}"#, #"{"data":01}"#, #"{"data":1.}"#,
            #"{"data":"a","data":"b"}"#, #"{"data":"a","conflate":"k"}"#, #"{"event":"x"}"#, #"{"data":"x"} x"#,
            #"{"data":[1,]}"#, #"{"data":{"a"}}"#, #"{"data":tru}"#, #"{"data":"x""#, #"{}"#, #"[{"data":1}]"#,
            #"{"data":"x","event":"starling.gap"}"#, #"{"data":"x","event":"bad name"}"#, #"{"data":-}"#,
        ]
        for body in bodies {
            let quick = Array(body.utf8).withUnsafeBufferPointer { QuickEvent.parse($0) }
            guard let quick else { continue }  // stepped aside: the general path decides
            // parseJSON checks names and sizes after either reader, as the general path does.
            let checked = (try? PublishBody.check(quick, limits: .init(maxEventBytes: 1 << 20), place: "event")).map { quick }
            XCTAssertEqual(checked, general(body), body)
        }
        // Invalid UTF-8 inside a string is never taken by the quick reader.
        let bad: [UInt8] = Array(#"{"data":""#.utf8) + [0xF0, 0x9F, 0x98] + Array(#""}"#.utf8)
        XCTAssertNil(bad.withUnsafeBufferPointer { QuickEvent.parse($0) })
        // The common shapes are taken.
        for body in [#"{"data":"hello"}"#, #"{"data":{"t":1,"seq":2,"pad":"xx"}}"#, #"{"event":"tok","data":[1]}"#] {
            XCTAssertNotNil(Array(body.utf8).withUnsafeBufferPointer { QuickEvent.parse($0) }, body)
        }
    }

    /// The eight-byte step of the string scan, against a byte-by-byte oracle; then strings
    /// long enough to take it, with a byte that ends or spoils them at every offset.
    func testEightByteStringScanFindsEveryEnd() {
        var rng = SystemRandomNumberGenerator()
        let interesting: [UInt8] = [0x00, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7F, 0x80, 0xA2, 0xDC, 0xFF, 0x61]
        for _ in 0..<50_000 {
            let bytes = (0..<8).map { _ in interesting.randomElement(using: &rng)! }
            let w = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            XCTAssertEqual(QuickEvent.Reader.mayEndString(w), bytes.contains { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 }, "\(bytes)")
        }
        for n in 0..<40 {
            let before = String(repeating: "a", count: n), after = String(repeating: "b", count: 20)
            for body in [#"{"data":"\#(before)"}"#, #"{"data":"\#(before)\n\#(after)"}"#, #"{"data":"\#(before)\"\#(after)"}"#,
                         "{\"data\":\"\(before)\u{01}\(after)\"}", #"{"data":"\#(before)é\#(after)"}"#,
                         #"{"data":{"k":"\#(before)","pad":"\#(after)"}}"#] {
                let quick = Array(body.utf8).withUnsafeBufferPointer { QuickEvent.parse($0) }
                guard let quick else { continue }
                XCTAssertEqual(quick, general(body), body)
            }
            XCTAssertEqual(Array(#"{"data":"\#(before)"}"#.utf8).withUnsafeBufferPointer { QuickEvent.parse($0) }?.data, .text(before))
        }
    }

    func testParseJSONStillChecksNamesAndSizes() {
        XCTAssertThrowsError(try PublishBody.parseJSON(Array(#"{"data":"x","event":"starling.gap"}"#.utf8),
                                                       limits: .init(maxEventBytes: 100), channelKey: false))
        XCTAssertThrowsError(try PublishBody.parseJSON(Array(#"{"data":"xxxxxxxxxx"}"#.utf8),
                                                       limits: .init(maxEventBytes: 5), channelKey: false))
    }

    func testInPlaceEncodingMatchesTheEncoder() {
        let ids = [EventID(ms: 0, seq: 0), EventID(ms: 1_764_000_000_123, seq: 9), EventID(ms: .max, seq: .max)]
        for id in ids {
            for (name, data) in [("message", "x"), ("tok", "{\"a\":1}"), ("message", ""), ("t", "a\nb\r\nc"), ("m", "é\r")] {
                let made = SSEEncoder.encode(id: id, name: name, data: data)
                XCTAssertEqual(made.array, SSEEncoder.event(id: id.description, name: name, data: data), "\(id) \(name) \(data)")
            }
        }
    }

    /// ByteWriter's decimals (two digits at a time) against String(describing:).
    func testDecimalsMatchTheirDescription() {
        var values: [UInt64] = [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 1_764_190_000_000, UInt64.max, UInt64.max - 1]
        var p: UInt64 = 1
        for _ in 0..<19 { values += [p - 1, p, p + 1, p * 9 + 7]; p *= 10 }
        for v in values {
            let out = [UInt8](unsafeUninitializedCapacity: 24) { b, n in
                var w = ByteWriter(UnsafeMutableRawBufferPointer(b))
                w.put(decimal: v)
                n = w.count
            }
            XCTAssertEqual(String(decoding: out, as: UTF8.self), String(v))
        }
    }
}
