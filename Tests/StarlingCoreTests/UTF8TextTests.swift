import StarlingCore
import XCTest

final class UTF8TextTests: XCTestCase {
    /// The hand-made check against the standard library's own validation: known cases,
    /// then random byte strings biased towards multi-byte sequences and their faults.
    func testAgreesWithTheStandardValidation() {
        let known: [[UInt8]] = [
            [], Array("plain ascii".utf8), Array("é ✓ 𝄞".utf8), Array("\u{FFFD}".utf8),
            [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xF5, 0x80, 0x80, 0x80], [0x80], [0xE2, 0x82], [0x61, 0xF0, 0x90, 0x80], [0xFF],
        ]
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0x41, 0x7F, 0x80, 0xBF, 0xC2, 0xC0, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xA0, 0x90, 0xBD]
        let random = (0..<20_000).map { _ in (0..<Int.random(in: 0...6, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! } }
        for bytes in known + random {
            let expected = String(validating: bytes, as: UTF8.self)
            XCTAssertEqual(UTF8Text.string(bytes), expected, "\(bytes)")
        }
    }
}
