// UTF8Text: bytes to a String only if they are UTF-8. `String(validating:as:)` measured
// four times the instructions of `String(decoding:as:)` here (it is not specialized for
// UTF-8 in this toolchain's standard library), and every publish makes one or two.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum UTF8Text {
    /// `bytes` as a String, or nil if they are not valid UTF-8.
    public static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var s = String(decoding: bytes, as: UTF8.self)
        // Decoding replaces each invalid sequence with U+FFFD and copies valid UTF-8 as it
        // is, so the result equals the input byte for byte exactly when nothing was replaced.
        let unchanged = s.withUTF8 { out in
            out.count == bytes.count && (bytes.isEmpty || memcmp(out.baseAddress!, bytes.baseAddress!, bytes.count) == 0)
        }
        return unchanged ? s : nil
    }

    public static func string(_ bytes: [UInt8]) -> String? { bytes.withUnsafeBufferPointer { string($0) } }
}
