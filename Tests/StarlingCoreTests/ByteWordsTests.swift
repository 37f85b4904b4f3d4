// ByteWords against a byte-by-byte loop: on words built around the edges (each byte value
// at each position, in words of bytes just above and below it) and on random words, every
// answer is non-zero exactly when some byte matches.
import StarlingCore
import XCTest

final class ByteWordsTests: XCTestCase {
    private func bytes(_ w: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }

    private func check(_ w: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let b = bytes(w)
        for n: UInt8 in [0x01, 0x20, 0x7F, 0x80] {
            XCTAssertEqual(ByteWords.below(n, in: w) != 0, b.contains { $0 < n }, "below \(n) in \(String(w, radix: 16))", file: file, line: line)
        }
        for c: UInt8 in [0x00, 0x09, 0x22, 0x5C, 0x7F, 0xFF] {
            XCTAssertEqual(ByteWords.equal(c, in: w) != 0, b.contains(c), "equal \(c) in \(String(w, radix: 16))", file: file, line: line)
        }
        XCTAssertEqual(ByteWords.nonASCII(in: w) != 0, b.contains { $0 >= 0x80 }, file: file, line: line)
    }

    func testEveryByteValueAtEveryPositionAmongItsNeighbours() {
        for v in 0...255 {
            for filler: UInt8 in [UInt8(truncatingIfNeeded: v &+ 1), UInt8(truncatingIfNeeded: v &- 1), 0x41, 0x00, 0xFF] {
                for at in 0..<8 {
                    var w: UInt64 = 0
                    for k in 0..<8 { w |= UInt64(k == at ? UInt8(v) : filler) << (8 * k) }
                    check(w)
                }
            }
        }
    }

    func testRandomWords() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<20_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            check(state)
            check(state & 0x7F7F_7F7F_7F7F_7F7F)  // ASCII only
        }
    }
}
