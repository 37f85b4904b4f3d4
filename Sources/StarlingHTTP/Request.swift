// Request: one parsed HTTP/1.1 request head and (for buffered bodies) its body.
#if canImport(Glibc)
import Glibc
#endif

/// A request head as RequestReader gathered it: the URL's bytes, then each header's
/// lowercased name and its value. Headers become Strings only when looked up.
struct RequestHead {
    var bytes: [UInt8]
    var urlCount: Int
    /// Three offsets into `bytes` per header: name start, value start, value end.
    var spans: [UInt32]

    /// The value of the first header named `name` (lowercase).
    func value(_ name: String) -> String? {
        var name = name
        return name.withUTF8 { n in
            bytes.withUnsafeBufferPointer { b in
                var k = 0
                while k + 2 < spans.count {
                    let start = Int(spans[k]), mid = Int(spans[k + 1]), end = Int(spans[k + 2])
                    k += 3
                    guard mid - start == n.count, n.count == 0 || memcmp(b.baseAddress! + start, n.baseAddress!, n.count) == 0 else { continue }
                    return String(decoding: UnsafeBufferPointer(rebasing: b[mid..<end]), as: UTF8.self)
                }
                return nil
            }
        }
    }

    var all: [(String, String)] {
        var out: [(String, String)] = []
        var k = 0
        while k + 2 < spans.count {
            let start = Int(spans[k]), mid = Int(spans[k + 1]), end = Int(spans[k + 2])
            out.append((String(decoding: bytes[start..<mid], as: UTF8.self), String(decoding: bytes[mid..<end], as: UTF8.self)))
            k += 3
        }
        return out
    }
}

public final class Request {
    public let method: String
    /// The raw request target, e.g. `/v1/channels/a/events?lastEventId=1-0`.
    public let target: String
    public let path: Substring
    public let query: [(String, String)]
    /// Header names lowercased, values as sent, in order (made on each call: use `header`).
    public var headers: [(String, String)] { head.all }
    private let head: RequestHead
    public let keepAlive: Bool
    /// Position of this request on its connection; responses go out in this order.
    public let sequence: UInt64
    public internal(set) var body: [UInt8] = []
    /// When the head was read (MonotonicClock): request durations count from here.
    public let receivedNs = MonotonicClock.nowNs()

    init(method: String, head: RequestHead, keepAlive: Bool, sequence: UInt64) {
        self.method = method
        let target = String(decoding: head.bytes[..<head.urlCount], as: UTF8.self)
        self.target = target
        self.head = head
        self.keepAlive = keepAlive
        self.sequence = sequence
        // Byte search: a Character search would run grapheme breaking on every request.
        var text = target
        let q = text.withUTF8 { b in
            b.isEmpty ? nil : memchr(b.baseAddress!, 0x3F, b.count).map { UnsafeRawPointer(b.baseAddress!).distance(to: UnsafeRawPointer($0)) }
        }
        if let q = q.map({ target.utf8.index(target.utf8.startIndex, offsetBy: $0) }) {
            path = target[..<q]
            query = Request.parseQuery(target[target.utf8.index(after: q)...])
        } else {
            path = target[...]
            query = []
        }
    }

    /// The first header named `name` (lowercase), read from the head's bytes.
    public func header(_ name: String) -> String? { head.value(name) }

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
