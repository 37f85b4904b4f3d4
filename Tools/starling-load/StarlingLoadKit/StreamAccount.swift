// StreamAccount: correctness for one subscriber connection on one channel, from the
// publisher's per-channel sequence numbers (starting at 0). Invariant: every seq below
// `next` was seen, except those in `holes`; a late arrival that fills a hole is a
// reordering, a seq seen twice is a duplicate, a hole still open at the end is a loss.

public struct StreamAccount: Sendable {
    /// The lowest seq not yet seen in order.
    public private(set) var next: UInt64 = 0
    public private(set) var holes: Set<UInt64> = []
    public private(set) var received = 0
    public private(set) var duplicates = 0
    public private(set) var reordered = 0

    public init() {}

    public mutating func see(_ seq: UInt64) {
        received += 1
        if seq == next {
            next += 1
        } else if seq > next {
            // Everything skipped is missing unless it shows up later (then: reordered).
            var s = next
            while s < seq { holes.insert(s); s += 1 }
            next = seq + 1
        } else if holes.remove(seq) != nil {
            reordered += 1
        } else {
            duplicates += 1
        }
    }

    /// Whether every seq below `count` has been seen.
    public func isComplete(through count: UInt64) -> Bool { next >= count && holes.isEmpty }

    /// Events lost out of `published` (seqs 0..<published), not counting seqs whose
    /// publish the server refused (`failed`): those were never accepted.
    public func lost(published: UInt64, failed: Set<UInt64> = []) -> Int {
        var n = holes.filter { !failed.contains($0) }.count
        if next < published {
            n += Int(published - next) - failed.filter { $0 >= next && $0 < published }.count
        }
        return n
    }
}
