// LaneTokens: the fast lane's last few bearer tokens, by their bytes as sent, each with the
// grant it was found to carry in the second it was checked. Within that second the
// Authorizer could decide nothing else (`authenticate` reads only the token, the keys,
// which never change while the broker runs, and the clock's second), so a worker's
// publishes cost a compare of its token's bytes, not a String of ~250 bytes, a hash of it
// and the token cache's lookup, ~4.7 k instructions each (callgrind). Only grants are
// kept: a refused token is checked again each time, on the general path. Per loop (a
// Broker's), so no lock; a handful of slots, as a loop serves a few workers at a time
// and each sends the same token on every publish.
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

    private var entries: [Entry] = []
    private var oldest = 0
    static let capacity = 8

    /// The grant of the token in `value` during `second`: remembered, or `check`ed now (and
    /// remembered when there is one).
    mutating func grant(for value: UnsafeRawBufferPointer, second: Int, check: () -> Grant?) -> Grant? {
        let slot = entries.firstIndex { e in
            e.bytes.count == value.count && e.bytes.withUnsafeBytes { memcmp($0.baseAddress!, value.baseAddress!, value.count) == 0 }
        }
        if let slot, entries[slot].second == second { return entries[slot].grant }
        guard let grant = check() else { return nil }
        let entry = Entry(bytes: Array(value), grant: grant, second: second)
        if let slot {
            entries[slot] = entry
        } else if entries.count < Self.capacity {
            entries.append(entry)
        } else {
            entries[oldest] = entry
            oldest = (oldest + 1) % Self.capacity
        }
        return grant
    }
}
