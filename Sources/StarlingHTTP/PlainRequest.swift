// PlainRequest: the fast path for the requests publishers pipeline. A read that begins
// between requests is scanned here first: every complete request of the plain shape
// (GET or POST, HTTP/1.1, a URL of ordinary characters, headers of token names and
// printable values, at most one Content-Length, the whole body already read) is handed to
// the Connection without http_parser. Why by hand: http_parser's byte-at-a-time state
// machine and its seven callbacks were 15 % of the user-space instructions of a publish
// in the many-channels shape (callgrind, ops/bench/hotpath.sh); this scan is a few
// compares per byte.
//
// It answers only when http_parser would read the request the same way: anything else
// (another method or version, Transfer-Encoding, Connection, Upgrade, a header value with
// leading/trailing blanks it would trim, obs-text, a limit of SPEC §7 reached, a request
// cut by the end of the read, the CRLFs http_parser skips between requests) returns nil,
// and http_parser reads from that request on, errors and limits included.
// StarlingHTTPTests.PlainRequestTests compares the two on many requests.

import StarlingCore

struct PlainRequest {
    let method: String
    let url: Range<Int>
    /// The header lines: from the first one's name to the blank line's CR (each line with
    /// its CRLF; empty when there is no header).
    let headers: Range<Int>
    /// The Content-Length (0 without one).
    let contentLength: Int
    let body: Range<Int>
    /// Whether every header is one of those a plain client sends (Host, User-Agent, Accept,
    /// Accept-Encoding, Authorization, Content-Type, Content-Length; Authorization and
    /// Content-Type at most once).
    let onlyCommonHeaders: Bool
    /// The Content-Type value, when there is one.
    let contentType: Range<Int>?
    /// The Authorization value, when there is one.
    let authorization: Range<Int>?

    /// The plain request starting at `start` in `b`, or nil for http_parser to read.
    static func scan(_ b: UnsafeRawBufferPointer, from start: Int, limits: HTTPLimits) -> PlainRequest? {
        byteClasses.withUnsafeBufferPointer { classes in scan(b, from: start, limits: limits, classes) }
    }

    private static func scan(_ b: UnsafeRawBufferPointer, from start: Int, limits: HTTPLimits,
                             _ classes: UnsafeBufferPointer<UInt8>) -> PlainRequest? {
        @inline(__always) func isURLByte(_ c: UInt8) -> Bool { classes[Int(c)] & urlByte != 0 }
        @inline(__always) func isNameByte(_ c: UInt8) -> Bool { classes[Int(c)] & nameByte != 0 }
        @inline(__always) func isValueByte(_ c: UInt8) -> Bool { classes[Int(c)] & valueByte != 0 }
        let n = b.count
        var i = start
        let method: String
        if n - i >= 5, b[i] == 0x50, b[i + 1] == 0x4F, b[i + 2] == 0x53, b[i + 3] == 0x54, b[i + 4] == 0x20 {
            method = "POST"; i += 5
        } else if n - i >= 4, b[i] == 0x47, b[i + 1] == 0x45, b[i + 2] == 0x54, b[i + 3] == 0x20 {
            method = "GET"; i += 4
        } else {
            return nil
        }
        let urlStart = i
        guard i < n, b[i] == 0x2F else { return nil }  // origin-form: starts with "/"
        while i < n, isURLByte(b[i]) { i += 1 }
        let urlEnd = i
        guard urlEnd - urlStart <= limits.maxURLBytes, n - i >= 11 else { return nil }
        // " HTTP/1.1\r\n"
        guard b[i] == 0x20, b[i + 1] == 0x48, b[i + 2] == 0x54, b[i + 3] == 0x54, b[i + 4] == 0x50, b[i + 5] == 0x2F,
              b[i + 6] == 0x31, b[i + 7] == 0x2E, b[i + 8] == 0x31, b[i + 9] == 0x0D, b[i + 10] == 0x0A else { return nil }
        i += 11
        let headersStart = i
        var headBytes = urlEnd - urlStart  // counted as RequestReader counts: URL, names, values
        var length = -1
        var common = true
        var contentType: Range<Int>?
        var authorization: Range<Int>?
        while true {
            guard n - i >= 2 else { return nil }
            if b[i] == 0x0D {
                guard b[i + 1] == 0x0A else { return nil }
                break
            }
            let nameStart = i
            while i < n, isNameByte(b[i]) { i += 1 }
            let nameEnd = i
            guard i < n, b[i] == 0x3A, nameEnd > nameStart else { return nil }
            i += 1
            while i < n, b[i] == 0x20 || b[i] == 0x09 { i += 1 }
            let valueStart = i
            // Eight bytes a step while all are value bytes (by hand: a worker's token makes
            // its Authorization line ~250 bytes, a third of the request), then byte by byte.
            while n - i >= 8, Self.allPrintable(UnsafeRawPointer(b.baseAddress! + i).loadUnaligned(as: UInt64.self)) { i += 8 }
            while i < n, isValueByte(b[i]) { i += 1 }
            let valueEnd = i
            guard n - i >= 2, b[i] == 0x0D, b[i + 1] == 0x0A, valueEnd > valueStart,
                  b[valueEnd - 1] != 0x20, b[valueEnd - 1] != 0x09 else { return nil }
            i += 2
            headBytes += nameEnd - nameStart + valueEnd - valueStart
            guard headBytes <= limits.maxHeadBytes else { return nil }
            switch special(b, nameStart, nameEnd) {
            case .common: break
            case .uncommon: common = false
            case .contentType:
                if contentType == nil { contentType = valueStart..<valueEnd } else { common = false }
            case .authorization:
                if authorization == nil { authorization = valueStart..<valueEnd } else { common = false }
            case .other: return nil
            case .contentLength:
                guard length < 0, valueEnd - valueStart <= 9 else { return nil }
                var v = 0
                for k in valueStart..<valueEnd {
                    guard b[k] >= 0x30, b[k] <= 0x39 else { return nil }
                    v = v * 10 + Int(b[k] - 0x30)
                }
                length = v
            }
        }
        let headersEnd = i
        let bodyStart = i + 2
        let contentLength = max(length, 0)
        guard contentLength <= limits.maxBodyBytes, n - bodyStart >= contentLength else { return nil }
        return PlainRequest(method: method, url: urlStart..<urlEnd, headers: headersStart..<headersEnd,
                            contentLength: contentLength, body: bodyStart..<bodyStart + contentLength,
                            onlyCommonHeaders: common, contentType: contentType, authorization: authorization)
    }

    /// Whether each of the eight bytes of `w` is printable ASCII (0x20-0x7E); false when
    /// one is not (a tab too, which the byte loop then takes). ByteWords.
    @inline(__always) static func allPrintable(_ w: UInt64) -> Bool {
        ByteWords.nonASCII(in: w) | ByteWords.below(0x20, in: w) | ByteWords.equal(0x7F, in: w) == 0
    }

    /// Calls `each` with every header's name and value (the lines `scan` checked).
    func forEachHeader(in b: UnsafeRawBufferPointer, _ each: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        var i = headers.lowerBound
        while i < headers.upperBound {
            let nameStart = i
            while b[i] != 0x3A { i += 1 }
            let nameEnd = i
            i += 1
            while b[i] == 0x20 || b[i] == 0x09 { i += 1 }
            let valueStart = i
            while b[i] != 0x0D { i += 1 }
            each(UnsafeRawBufferPointer(rebasing: b[nameStart..<nameEnd]), UnsafeRawBufferPointer(rebasing: b[valueStart..<i]))
            i += 2
        }
    }

    /// The request as the handler's fast lane sees it (`HTTPHandler.takePlain`).
    func bytes(in b: UnsafeRawBufferPointer) -> PlainRequestBytes {
        PlainRequestBytes(isPost: method == "POST", url: UnsafeRawBufferPointer(rebasing: b[url]),
                          body: UnsafeRawBufferPointer(rebasing: b[body]), onlyCommonHeaders: onlyCommonHeaders,
                          contentType: contentType.map { UnsafeRawBufferPointer(rebasing: b[$0]) },
                          authorization: authorization.map { UnsafeRawBufferPointer(rebasing: b[$0]) })
    }

    private enum Special { case common, uncommon, contentType, contentLength, authorization, other }

    /// Headers that change how http_parser frames the request or the connection (`other`),
    /// and those a plain client sends (`common`, for the handler's fast lane).
    private static func special(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Special {
        switch end - start {
        case 4: return named(b, start, "host") ? .common : .uncommon
        case 6: return named(b, start, "accept") ? .common : .uncommon
        case 7: return named(b, start, "upgrade") ? .other : .uncommon
        case 10: return named(b, start, "user-agent") ? .common : named(b, start, "connection") ? .other : .uncommon
        case 12: return named(b, start, "content-type") ? .contentType : .uncommon
        case 13: return named(b, start, "authorization") ? .authorization : .uncommon
        case 14: return named(b, start, "content-length") ? .contentLength : .uncommon
        case 15: return named(b, start, "accept-encoding") ? .common : .uncommon
        case 16: return named(b, start, "proxy-connection") ? .other : .uncommon
        case 17: return named(b, start, "transfer-encoding") ? .other : .uncommon
        default: return .uncommon
        }
    }

    /// Whether the name at `start`, as long as `lower` (the caller checked), is `lower`,
    /// ignoring ASCII case. Name bytes are letters, digits and "-", which all have bit 0x20
    /// set in lowercase: OR-ing it in folds case. Compared a word at a time (every header
    /// of every request passes here): words of 8 bytes, the last one ending with the name,
    /// or for names of 4 to 7 bytes two words of 4.
    private static func named(_ b: UnsafeRawBufferPointer, _ start: Int, _ lower: StaticString) -> Bool {
        let n = lower.utf8CodeUnitCount
        precondition(n >= 4 && start + n <= b.count, "a header name of 4 bytes or more, within the read")
        let p = b.baseAddress! + start, l = UnsafeRawPointer(lower.utf8Start)
        guard n >= 8 else {
            let fold: UInt32 = 0x2020_2020
            return p.loadUnaligned(as: UInt32.self) | fold == l.loadUnaligned(as: UInt32.self)
                && (p + n - 4).loadUnaligned(as: UInt32.self) | fold == (l + n - 4).loadUnaligned(as: UInt32.self)
        }
        let fold: UInt64 = 0x2020_2020_2020_2020
        var k = 0
        while k + 8 < n {
            guard (p + k).loadUnaligned(as: UInt64.self) | fold == (l + k).loadUnaligned(as: UInt64.self) else { return false }
            k += 8
        }
        return (p + n - 8).loadUnaligned(as: UInt64.self) | fold == (l + n - 8).loadUnaligned(as: UInt64.self)
    }

    private static let urlByte: UInt8 = 1, nameByte: UInt8 = 2, valueByte: UInt8 = 4

    /// What each byte may be, as bits (one load and one test per byte while scanning):
    /// - URL: printable ASCII but for the characters RFC 3986 never allows unescaped
    ///   (" # < > \ ^ ` { | } and the space that ends the URL);
    /// - name: letters, digits and "-", the header names in use (other token characters go
    ///   to http_parser);
    /// - value: printable ASCII and tab.
    private static let byteClasses: [UInt8] = (0..<256).map { (n: Int) -> UInt8 in
        let c = UInt8(n)
        var bits: UInt8 = 0
        if c > 0x20, c < 0x7F, ![0x22, 0x23, 0x3C, 0x3E, 0x5C, 0x5E, 0x60, 0x7B, 0x7C, 0x7D].contains(c) { bits |= urlByte }
        if (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D { bits |= nameByte }
        if (c >= 0x20 && c <= 0x7E) || c == 0x09 { bits |= valueByte }
        return bits
    }
}

/// A plain request's bytes, valid during `HTTPHandler.takePlain` only: a POST or a GET, the
/// target as sent (query included), what `PlainRequest.scan` noted of the headers, the body.
public struct PlainRequestBytes {
    public let isPost: Bool
    public let url: UnsafeRawBufferPointer
    public let body: UnsafeRawBufferPointer
    /// Whether every header is one a plain client sends: Host, User-Agent, Accept,
    /// Accept-Encoding, Authorization, Content-Type and Content-Length, Authorization and
    /// Content-Type at most once.
    public let onlyCommonHeaders: Bool
    /// The Content-Type value (the first), if any.
    public let contentType: UnsafeRawBufferPointer?
    /// The Authorization value, if any.
    public let authorization: UnsafeRawBufferPointer?
}
