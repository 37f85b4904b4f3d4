// Request: one parsed HTTP/1.1 request head and (for buffered bodies) its body.

public final class Request {
    public let method: String
    /// The raw request target, e.g. `/v1/channels/a/events?lastEventId=1-0`.
    public let target: String
    public let path: Substring
    public let query: [(String, String)]
    /// Header names lowercased, values as sent, in order.
    public let headers: [(String, String)]
    public let keepAlive: Bool
    /// Position of this request on its connection; responses go out in this order.
    public let sequence: UInt64
    public internal(set) var body: [UInt8] = []
    /// When the head was read (MonotonicClock): request durations count from here.
    public let receivedNs = MonotonicClock.nowNs()

    init(method: String, target: String, headers: [(String, String)], keepAlive: Bool, sequence: UInt64) {
        self.method = method
        self.target = target
        self.headers = headers
        self.keepAlive = keepAlive
        self.sequence = sequence
        // Byte search: a Character search would run grapheme breaking on every request.
        if let q = target.utf8.firstIndex(of: 0x3F) {
            path = target[..<q]
            query = Request.parseQuery(target[target.utf8.index(after: q)...])
        } else {
            path = target[...]
            query = []
        }
    }

    public func header(_ name: String) -> String? {
        headers.first(where: { $0.0 == name })?.1
    }

    public func queryValue(_ name: String) -> String? {
        query.first(where: { $0.0 == name })?.1
    }

    public func queryValues(_ name: String) -> [String] {
        query.filter { $0.0 == name }.map(\.1)
    }

    static func parseQuery(_ text: Substring) -> [(String, String)] {
        text.split(separator: "&").map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (percentDecode(kv[0]), kv.count > 1 ? percentDecode(kv[1]) : "")
        }
    }

    /// `application/x-www-form-urlencoded` decoding; bad escapes are kept as sent.
    public static func percentDecode(_ s: Substring) -> String {
        guard s.utf8.contains(where: { $0 == 0x25 || $0 == 0x2B }) else { return String(s) }
        var out: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            if u[i] == 0x2B { out.append(0x20); i += 1; continue }
            if u[i] == 0x25, i + 2 < u.count, let h = hex(u[i + 1]), let l = hex(u[i + 2]) {
                out.append(h << 4 | l); i += 3; continue
            }
            out.append(u[i]); i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}
