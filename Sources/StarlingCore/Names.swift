// Name rules of SPEC §3: channel names and SSE event names.

public enum Names {
    /// 1–200 bytes of `[A-Za-z0-9._:@-]`.
    public static func isValidChannel(_ name: String) -> Bool { var n = name; return n.withUTF8 { isValidChannel($0) } }
    public static func isValidChannel(_ name: Substring) -> Bool { var n = name; return n.withUTF8 { isValidChannel($0) } }
    public static func isValidChannel(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.count <= 200 && all(bytes, in: channelBytes)
    }

    /// `[A-Za-z0-9._:-]{1,64}`.
    public static func isValidEventName(_ name: String) -> Bool { var n = name; return n.withUTF8 { isValidEventName($0) } }
    public static func isValidEventName(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.count <= 64 && all(bytes, in: eventNameBytes)
    }

    /// Whether `bytes` is non-empty and every byte is in `set`: a plain loop over the
    /// buffer (a generic `allSatisfy` over a String's UTF-8 view cost 30 instructions a
    /// byte, and every publish checks a channel and an event name).
    @inline(__always) static func all(_ bytes: UnsafeBufferPointer<UInt8>, in set: (UInt64, UInt64)) -> Bool {
        guard !bytes.isEmpty else { return false }
        // The set's word by bit 6 (a conditional move), its bit by the low six, misses
        // OR-ed together. The exit on a byte of 128 or more also keeps LLVM from
        // vectorizing the loop, which it did four bytes a step at 15 instructions a byte.
        var missing: UInt64 = 0
        for c in bytes {
            guard c < 0x80 else { return false }
            let word = c & 0x40 == 0 ? set.0 : set.1
            missing |= ~(word >> UInt64(c & 63)) & 1
        }
        return missing == 0
    }

    /// Names starting `starling.` belong to the broker (gap notices and the like).
    public static func isReserved(_ name: String) -> Bool { name.hasPrefix("starling.") }

    /// The allowed bytes as a 128-bit set (all are ASCII): one shift and mask per byte
    /// instead of six comparisons; every publish checks its channel and event name.
    /// Low word: bytes 0–63 (`-` 0x2D, `.` 0x2E, `0`–`9`, `:` 0x3A); high word: 64–127
    /// (`@` 0x40, `A`–`Z`, `_` 0x5F, `a`–`z`).
    static var eventNameBytes: (UInt64, UInt64) { (0x07FF_6000_0000_0000, 0x07FF_FFFE_87FF_FFFE) }
    static var channelBytes: (UInt64, UInt64) { (0x07FF_6000_0000_0000, 0x07FF_FFFE_87FF_FFFF) }
}
