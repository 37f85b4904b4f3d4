// ByteWords: questions about the eight bytes of a word at once, for the scans every publish
// passes through (its header values, its event's text): one step per eight bytes where a
// byte loop took eight. The bit tricks of "Bit Twiddling Hacks": each answer has the high
// bit of some byte set exactly when some byte matches (the lowest matching byte is always
// marked; a borrow may mark others above it), so test the whole answer against zero.
public enum ByteWords {
    /// Non-zero when some byte of `w` is below `n` (at most 0x80).
    @inlinable @inline(__always)
    public static func below(_ n: UInt8, in w: UInt64) -> UInt64 {
        (w &- 0x0101_0101_0101_0101 &* UInt64(n)) & ~w & 0x8080_8080_8080_8080
    }

    /// Non-zero when some byte of `w` is `c`.
    @inlinable @inline(__always)
    public static func equal(_ c: UInt8, in w: UInt64) -> UInt64 {
        let x = w ^ (0x0101_0101_0101_0101 &* UInt64(c))
        return (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
    }

    /// Non-zero when some byte of `w` is 0x80 or above.
    @inlinable @inline(__always)
    public static func nonASCII(in w: UInt64) -> UInt64 { w & 0x8080_8080_8080_8080 }
}
