// Name rules of SPEC §3: channel names and SSE event names.

public enum Names {
    /// 1–200 bytes of `[A-Za-z0-9._:@-]`.
    public static func isValidChannel(_ name: String) -> Bool { isValidChannel(name.utf8) }
    public static func isValidChannel(_ name: Substring) -> Bool { isValidChannel(name.utf8) }
    public static func isValidChannel(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool { isValidChannel(bytes[...]) }

    static func isValidChannel<U: Collection>(_ u: U) -> Bool where U.Element == UInt8 {
        guard !u.isEmpty, u.count <= 200 else { return false }
        return u.allSatisfy { inSet($0, channelBytes) }
    }

    /// `[A-Za-z0-9._:-]{1,64}`.
    public static func isValidEventName(_ name: String) -> Bool { isValidEventName(name.utf8) }

    static func isValidEventName<U: Collection>(_ u: U) -> Bool where U.Element == UInt8 {
        guard !u.isEmpty, u.count <= 64 else { return false }
        return u.allSatisfy { inSet($0, eventNameBytes) }
    }

    /// Names starting `starling.` belong to the broker (gap notices and the like).
    public static func isReserved(_ name: String) -> Bool { name.hasPrefix("starling.") }

    /// The allowed bytes as a 128-bit set (all are ASCII): one shift and mask per byte
    /// instead of six comparisons; every publish checks its channel and event name.
    /// Low word: bytes 0–63 (`-` 0x2D, `.` 0x2E, `0`–`9`, `:` 0x3A); high word: 64–127
    /// (`@` 0x40, `A`–`Z`, `_` 0x5F, `a`–`z`).
    static let eventNameBytes: (UInt64, UInt64) = (0x07FF_6000_0000_0000, 0x07FF_FFFE_87FF_FFFE)
    static let channelBytes: (UInt64, UInt64) = (0x07FF_6000_0000_0000, 0x07FF_FFFE_87FF_FFFF)

    @inline(__always) static func inSet(_ c: UInt8, _ set: (UInt64, UInt64)) -> Bool {
        let word = c < 64 ? set.0 : c < 128 ? set.1 : 0
        return (word >> UInt64(c & 63)) & 1 == 1
    }

    @inline(__always) static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }
}
