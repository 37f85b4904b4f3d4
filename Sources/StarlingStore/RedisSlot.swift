// RedisSlot: which of Redis Cluster's 16384 hash slots a channel's key lives in. The key
// `starling:{ch}` is hash-tagged, so the slot is CRC16-XMODEM of the channel name (channel
// names cannot contain `{` or `}`, so the tag is the whole name) modulo 16384, exactly as
// `CLUSTER KEYSLOT starling:{ch}` answers. Written here: hiredis 0.14 has no cluster code.

enum RedisSlot {
    static let count = 16384

    /// The slot of `channel`'s stream key (and of its sharded pub/sub channel, the same name).
    static func of(channel: String) -> Int {
        Int(crc16(channel.utf8) & UInt16(count - 1))
    }

    /// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection; the one
    /// Redis Cluster uses (`crc16("123456789") == 0x31C3`). A byte at a time through a
    /// 256-entry table (bit by bit, it was 7 % of the cluster engine's instructions).
    static func crc16<S: Sequence>(_ bytes: S) -> UInt16 where S.Element == UInt8 {
        var crc: UInt16 = 0
        table.withUnsafeBufferPointer { t in
            for byte in bytes { crc = (crc << 8) ^ t[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)] }
        }
        return crc
    }

    /// The CRC of each byte value, shifted through the polynomial once.
    private static let table: [UInt16] = (0..<256).map { (n: Int) -> UInt16 in
        var crc = UInt16(n) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
