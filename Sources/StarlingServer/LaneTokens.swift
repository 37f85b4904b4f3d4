// LaneTokens: the fast lane's bearer tokens, by their bytes as sent, each with the grant it
// was found to carry in the second it was checked. Within that second the Authorizer could
// decide nothing else (`authenticate` reads only the token, the keys, which never change
// while the broker runs, and the clock's second), so a worker's publishes cost a compare of
// its token's bytes, not a String of ~250 bytes, a hash of it and the token cache's lookup,
// ~4.7 k instructions each (callgrind). Only grants are kept: a refused token is checked
// again each time, on the general path. A slot per hash of the token's last eight bytes (a
// JWT ends with its signature, as good as random), holding the last token that hashed
// there: workers with a token each (one per job) seldom share a slot, and when they do they
// take turns, slower, never wrong, as the bytes are compared on every hit. Per loop (a
// Broker's), so no lock.
import StarlingAuth

#if canImport(Glibc)
import Glibc
#endif

struct LaneTokens {
    private struct Entry {
        var bytes: [UInt8]
        var grant: Grant
        var second: Int
    }

    private var slots = [Entry?](repeating: nil, count: LaneTokens.slotCount)
    private static let slotCount = 256

    /// The grant of the token in `value` (not empty) during `second`: remembered, or
    /// `check`ed now (and remembered when there is one).
    mutating func grant(for value: UnsafeRawBufferPointer, second: Int, check: () -> Grant?) -> Grant? {
        precondition(!value.isEmpty, "an Authorization value has bytes")
        let k = Self.slot(value)
        if let e = slots[k], e.second == second, e.bytes.count == value.count,
           e.bytes.withUnsafeBytes({ memcmp($0.baseAddress!, value.baseAddress!, value.count) == 0 }) {
            return e.grant
        }
        guard let grant = check() else { return nil }
        slots[k] = Entry(bytes: Array(value), grant: grant, second: second)
        return grant
    }

    private static func slot(_ value: UnsafeRawBufferPointer) -> Int {
        var tail: UInt64 = 0
        withUnsafeMutableBytes(of: &tail) { t in
            let n = min(8, value.count)
            t.copyMemory(from: UnsafeRawBufferPointer(rebasing: value[(value.count - n)...]))
        }
        // Fibonacci hashing: the top bits of the product mix every byte of the tail.
        return Int(truncatingIfNeeded: (tail &* 0x9E37_79B9_7F4A_7C15) >> 56)
    }
}
