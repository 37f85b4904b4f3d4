// EventID: the store-assigned position of an event in its channel, `<unix-ms>-<seq>`
// exactly like a Redis stream ID. Strictly increasing per channel; never contains CR, LF or NUL.

public struct EventID: Comparable, Hashable, CustomStringConvertible, Sendable {
    public var ms: UInt64
    public var seq: UInt64

    public init(ms: UInt64, seq: UInt64) {
        self.ms = ms
        self.seq = seq
    }

    /// Parses `<ms>-<seq>`; a bare `<ms>` means `<ms>-0` (as Redis reads it). Each part is
    /// 1–20 digits and fits in 64 bits.
    public init?(_ text: Substring) { self.init(bytes: text.utf8) }

    public init?(_ text: String) { self.init(bytes: text.utf8) }

    /// The same from bytes: the Redis engine reads every ID it receives this way (a byte
    /// loop; splitting Strings was 5 % of the Redis engine's CPU, perf).
    @inlinable public init?<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        var ms: UInt64 = 0
        var value: UInt64 = 0
        var digits = 0
        var inSeq = false
        for c in bytes {
            if c == 0x2D {
                guard !inSeq, digits > 0 else { return nil }
                inSeq = true
                ms = value
                value = 0
                digits = 0
                continue
            }
            guard c >= 0x30, c <= 0x39, digits < 20 else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(c - 0x30))
            guard !o1, !o2 else { return nil }
            value = sum
            digits += 1
        }
        guard digits > 0 else { return nil }
        if inSeq { self.init(ms: ms, seq: value) } else { self.init(ms: value, seq: 0) }
    }

    public static let zero = EventID(ms: 0, seq: 0)

    /// The ID a store assigns after `previous` at wall-clock `nowMs`.
    public static func next(after previous: EventID?, nowMs: UInt64) -> EventID {
        guard let p = previous else { return EventID(ms: nowMs, seq: 0) }
        if nowMs > p.ms { return EventID(ms: nowMs, seq: 0) }
        return EventID(ms: p.ms, seq: p.seq &+ 1)
    }

    public static func < (a: EventID, b: EventID) -> Bool {
        a.ms != b.ms ? a.ms < b.ms : a.seq < b.seq
    }

    public var description: String { "\(ms)-\(seq)" }
}

/// Where a subscriber wants to start: live only, everything retained, or after a known ID.
public enum ResumePoint: Equatable, Sendable {
    case live
    case earliest
    case after(EventID)

    /// Reads a `Last-Event-ID` value; nil when it is neither an ID nor `earliest`.
    public init?(header text: String) {
        let trimmed = text.trimmingASCIIWhitespace()
        if trimmed.isEmpty { self = .live; return }
        if trimmed == "earliest" || trimmed == "0" { self = .earliest; return }
        guard let id = EventID(Substring(trimmed)) else { return nil }
        self = id == .zero ? .earliest : .after(id)
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
