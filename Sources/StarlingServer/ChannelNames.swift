// ChannelNames: the fast lane's channel names as Strings, found by their bytes. A publish
// names its channel in the URL; making a String of it each time cost an allocation (and
// the memory every retained event kept for its copy), and the store's dictionary then
// compared that new String byte by byte with its key, a cache line cold at this rate. Here
// each channel's String is made once and handed out again: the store's key is the same
// object (`==` sees identical bits and stops), and the events share it. A slot holds the
// last name that hashed to it; a name that misses is made and takes the slot. Per loop (a
// Broker's), so no lock.
#if canImport(Glibc)
import Glibc
#endif

struct ChannelNames {
    private var slots = [String?](repeating: nil, count: ChannelNames.slotCount)
    private static let slotCount = 4096

    /// The String of `bytes` (valid channel bytes, which are ASCII), made once per slot.
    mutating func name(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let k = Self.slot(bytes)
        if var known = slots[k], known.utf8.count == bytes.count,
           known.withUTF8({ memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }) {
            return known
        }
        let made = String(decoding: bytes, as: UTF8.self)
        slots[k] = made
        return made
    }

    /// A slot from the length and the first and last eight bytes (names that differ only in
    /// the middle share a slot and take turns: slower, never wrong, as the bytes are
    /// compared). Multiplicative mixing; the top twelve bits pick the slot.
    static func slot(_ b: UnsafeBufferPointer<UInt8>) -> Int {
        var h = UInt64(b.count) &* 0x9E37_79B9_7F4A_7C15
        if b.count >= 8 {
            let raw = UnsafeRawPointer(b.baseAddress!)
            h ^= raw.loadUnaligned(as: UInt64.self) &* 0xC2B2_AE3D_27D4_EB4F
            h = (h ^ (h >> 29)) &* 0x1656_67B1_9E37_79F9
            h ^= raw.loadUnaligned(fromByteOffset: b.count - 8, as: UInt64.self) &* 0xC2B2_AE3D_27D4_EB4F
        } else {
            for c in b { h = (h ^ UInt64(c)) &* 0x100_0000_01B3 }
        }
        h = (h ^ (h >> 32)) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: h >> 52)
    }
}
