// RedisSlot's table-driven CRC16 against the bit-by-bit definition (polynomial 0x1021,
// XMODEM) and the check value Redis Cluster's specification gives.
@testable import StarlingStore
import XCTest

final class RedisSlotTests: XCTestCase {
    private func bitwise(_ bytes: [UInt8]) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return crc
    }

    func testTableCRCIsTheXMODEMCRC() {
        XCTAssertEqual(RedisSlot.crc16(Array("123456789".utf8)), 0x31C3)
        XCTAssertEqual(RedisSlot.crc16([UInt8]()), 0)
        var rng = SystemRandomNumberGenerator()
        for n in 0..<2_000 {
            let bytes = (0..<(n % 40)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            XCTAssertEqual(RedisSlot.crc16(bytes), bitwise(bytes), "\(bytes)")
        }
        // Slots as CLUSTER KEYSLOT gives them for starling:{ch} (the tag is the channel).
        XCTAssertEqual(RedisSlot.of(channel: "foo"), 12182)
        XCTAssertEqual(RedisSlot.of(channel: "bar"), 5061)
    }
}
