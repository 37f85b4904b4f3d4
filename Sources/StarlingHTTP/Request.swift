// Request: one parsed HTTP/1.1 request head and (for buffered bodies) its body.
#if canImport(Glibc)
import Glibc
#endif

/// A request head as RequestReader gathered it: the URL's bytes, then the headers'
/// lowercased names and their values (back to back from http_parser's callbacks, or the
/// header lines as sent from the plain reader). Headers become Strings only when looked up.
struct RequestHead {
    var bytes: [UInt8]
    var urlCount: Int
    /// Four offsets into `bytes` per header: name start and end, value start and end.
    var spans: [UInt32]

    /// The value of the first header named `name` (lowercase).
    func value(_ name: String) -> String? {
        var name = name
        return name.withUTF8 { n in withValue(n) { $0.map { String(decoding: $0, as: UTF8.self) } } }
    }

    /// Calls `body` with the value bytes of the first header named `name`, or nil.
    func withValue<R>(_ n: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        bytes.withUnsafeBufferPointer { b in
            var k = 0
            while k + 3 < spans.count {
                let start = Int(spans[k]), nameEnd = Int(spans[k + 1]), valueStart = Int(spans[k + 2]), end = Int(spans[k + 3])
                k += 4
                guard nameEnd - start == n.count, n.count == 0 || memcmp(b.baseAddress! + start, n.baseAddress!, n.count) == 0 else { continue }
                return body(UnsafeBufferPointer(rebasing: b[valueStart..<end]))
            }
            return body(nil)
        }
    }

    var all: [(String, String)] {
        var out: [(String, String)] = []
        var k = 0
        while k + 3 < spans.count {
            let start = Int(spans[k]), nameEnd = Int(spans[k + 1]), valueStart = Int(spans[k + 2]), end = Int(spans[k + 3])
            out.append((String(decoding: bytes[start..<nameEnd], as: UTF8.self), String(decoding: bytes[valueStart..<end], as: UTF8.self)))
            k += 4
        }
        return out
    }
}

public final class Request {
    public let method: String
    /// The raw request target, e.g. `/v1/channels/a/events?lastEventId=1-0`. Made on first
    /// use: routing reads the path's bytes (`withPath`), and a publish asks for nothing else.
    public private(set) lazy var target: String = String(decoding: head.bytes[..<head.urlCount], as: UTF8.self)
    /// The target up to its `?`, and the query's pairs, percent-decoded, in order: made on
    /// first use, from `target` (whose invalid UTF-8, if any, is already replaced).
    public private(set) lazy var path: Substring = {
        let t = target
        return t.utf8.firstIndex(of: 0x3F).map { t[..<$0] } ?? t[...]
    }()
    public private(set) lazy var query: [(String, String)] = {
        let t = target
        guard let q = t.utf8.firstIndex(of: 0x3F) else { return [] }
        return Request.parseQuery(t[t.utf8.index(after: q)...])
    }()
    /// Header names lowercased, values as sent, in order (made on each call: use `header`).
    public var headers: [(String, String)] { head.all }
    private var head: RequestHead
    /// Bytes of the target before its `?` (all of it when it has none).
    private let pathCount: Int
    public let keepAlive: Bool
    /// Position of this request on its connection; responses go out in this order.
    public let sequence: UInt64
    public internal(set) var body: [UInt8] = []
    /// When the head was read (MonotonicClock): request durations count from here.
    public let receivedNs = MonotonicClock.nowNs()

    init(method: String, head: RequestHead, keepAlive: Bool, sequence: UInt64) {
        self.method = method
        self.head = head
        self.keepAlive = keepAlive
        self.sequence = sequence
        // Byte search: a Character search would run grapheme breaking on every request.
        pathCount = head.bytes.withUnsafeBufferPointer { b in
            b.isEmpty || head.urlCount == 0 ? 0
                : memchr(b.baseAddress!, 0x3F, head.urlCount).map { UnsafeRawPointer(b.baseAddress!).distance(to: UnsafeRawPointer($0)) }
                    ?? head.urlCount
        }
    }

    /// Calls `body` with the path's bytes as they arrived (no String is made).
    public func withPath<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try head.bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[..<pathCount])) }
    }

    /// The first header named `name` (lowercase), read from the head's bytes.
    public func header(_ name: String) -> String? { head.value(name) }

    /// Whether a header named `name` (lowercase) was sent, found without making a String.
    public func hasHeader(_ name: StaticString) -> Bool { withHeader(name) { $0 != nil } }

    /// Calls `body` with the value bytes of the first header named `name` (lowercase), or
    /// nil when there is none: for checks that need no String.
    public func withHeader<R>(_ name: StaticString, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        head.withValue(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), body)
    }

    /// Hands this request's buffers, emptied and with their capacity, to the next request
    /// read on its connection (RequestReader.recycle): only once no one else holds it.
    func takeBuffers() -> (head: [UInt8], spans: [UInt32], body: [UInt8]) {
        var h: [UInt8] = [], s: [UInt32] = [], b: [UInt8] = []
        swap(&h, &head.bytes); swap(&s, &head.spans); swap(&b, &body)
        h.removeAll(keepingCapacity: true); s.removeAll(keepingCapacity: true); b.removeAll(keepingCapacity: true)
        return (h, s, b)
    }

    /// `Content-Type`, read once: a publish asks for it at its head and again at its body.
    public private(set) lazy var contentType: String? = header("content-type")

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
