// Name rules of SPEC §3: channel names and SSE event names.

public enum Names {
    /// 1–200 bytes of `[A-Za-z0-9._:@-]`.
    public static func isValidChannel(_ name: String) -> Bool { isValidChannel(name.utf8) }
    public static func isValidChannel(_ name: Substring) -> Bool { isValidChannel(name.utf8) }
    public static func isValidChannel(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool { isValidChannel(bytes[...]) }

    static func isValidChannel<U: Collection>(_ u: U) -> Bool where U.Element == UInt8 {
        guard !u.isEmpty, u.count <= 200 else { return false }
        return u.allSatisfy { isAlnum($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x3A || $0 == 0x40 || $0 == 0x2D }
    }

    /// `[A-Za-z0-9._:-]{1,64}`.
    public static func isValidEventName(_ name: String) -> Bool { isValidEventName(name.utf8) }

    static func isValidEventName<U: Collection>(_ u: U) -> Bool where U.Element == UInt8 {
        guard !u.isEmpty, u.count <= 64 else { return false }
        return u.allSatisfy { isAlnum($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x3A || $0 == 0x2D }
    }

    /// Names starting `starling.` belong to the broker (gap notices and the like).
    public static func isReserved(_ name: String) -> Bool { name.hasPrefix("starling.") }

    @inline(__always) static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }
}
