import StarlingCore
import XCTest

final class JSONTests: XCTestCase {
    func testCompactKeepsNumbersAndUnicodeAsSent() throws {
        let v = try JSONParser.parse(Array(#"{ "a" : [1.50, -0, 2e10, true, null], "s": "é\u00e9\n\"🚀" }"#.utf8))
        XCTAssertEqual(JSONWriter.compact(v), #"{"a":[1.50,-0,2e10,true,null],"s":"éé\n\"🚀"}"#)
    }

    func testSurrogatePairsDecode() throws {
        XCTAssertEqual(try JSONParser.parse(Array(#""\ud83d\ude80""#.utf8)), .string("🚀"))
        XCTAssertThrowsError(try JSONParser.parse(Array(#""\ud83d""#.utf8)))
    }

    func testErrorsSayWhere() {
        for (text, offset) in [("{\"a\":}", 5), ("[1,2", 4), ("{\"a\" 1}", 5), ("01", 1), ("\"abc", 4), ("[1] x", 4)] {
            XCTAssertThrowsError(try JSONParser.parse(Array(text.utf8)), text) { e in
                XCTAssertEqual((e as? JSONError)?.offset, offset, "\(text): \(e)")
            }
        }
    }

    func testInvalidUTF8InStringIsRefused() {
        XCTAssertThrowsError(try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]))
        XCTAssertEqual(UTF8Check.firstInvalidOffset([0x61, 0x62, 0xE2, 0x82]), 2)
        XCTAssertEqual(UTF8Check.firstInvalidOffset(Array("ok é 🚀".utf8)), nil)
        XCTAssertEqual(UTF8Check.firstInvalidOffset([0xED, 0xA0, 0x80]), 0, "encoded surrogates are not UTF-8")
        XCTAssertEqual(UTF8Check.firstInvalidOffset([0xC0, 0x80]), 0, "overlong forms are not UTF-8")
    }

    func testDeepNestingIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        XCTAssertThrowsError(try JSONParser.parse(Array(deep.utf8)))
    }

    func testControlCharactersAreEscapedOnOutput() {
        XCTAssertEqual(JSONWriter.quoted("a\u{1}b\tc"), #""a\u0001b\tc""#)
    }
}
