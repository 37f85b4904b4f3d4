// EventID: the store-assigned position of an event in its channel, `<unix-ms>-<seq>`
// exactly like a Redis stream ID. Strictly increasing per channel; never contains CR, LF or NUL.

public struct EventID: Comparable, Hashable, CustomStringConvertible, Sendable {
    public var ms: UInt64
    public var seq: UInt64

    public init(ms: UInt64, seq: UInt64) {
        self.ms = ms
        self.seq = seq
    }

    /// Parses `<ms>-<seq>`; a bare `<ms>` means `<ms>-0` (as Redis reads it).
    public init?(_ text: Substring) {
        let parts = text.split(separator: "-", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count <= 2, let first = parts.first, !first.isEmpty, first.count <= 20,
              first.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let ms = UInt64(first) else { return nil }
        var seq: UInt64 = 0
        if parts.count == 2 {
            let s = parts[1]
            guard !s.isEmpty, s.count <= 20, s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let v = UInt64(s) else { return nil }
            seq = v
        }
        self.init(ms: ms, seq: seq)
    }

    public init?(_ text: String) { self.init(Substring(text)) }

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
