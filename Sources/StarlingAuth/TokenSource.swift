// Where a request's token comes from (SPEC §7): `Authorization: Bearer` first, then
// `?access_token=` (a browser EventSource cannot send headers), then the cookie.
// The broker passes the raw candidates; nothing here touches the request.

extension Authorizer {
    /// The later candidates are looked at only when the earlier ones give nothing: a
    /// worker's publish carries its token in the header, and its URL has no query to parse.
    public static func token(authorization: String?, queryAccessToken: @autoclosure () -> String?,
                             cookieHeader: @autoclosure () -> String?, cookieName: String) -> String? {
        if let authorization, let t = bearer(authorization) { return t }
        if let q = queryAccessToken(), !q.isEmpty { return q }
        if let cookieHeader = cookieHeader(), let t = cookie(cookieHeader, named: cookieName) { return t }
        return nil
    }

    /// `Bearer <token>`, scheme case-insensitive (RFC 7235), spaces around trimmed.
    static func bearer(_ header: String) -> String? {
        let u = header.utf8
        return bearerRange(u).map { String(decoding: u[$0], as: UTF8.self) }
    }

    /// `bearer` on a header value's bytes (the publish fast lane's, read in place).
    public static func bearer(bytes: UnsafeRawBufferPointer) -> String? {
        bearerRange(bytes).map { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[$0]), as: UTF8.self) }
    }

    /// Where the token of `Bearer <token>` lies in the header value `u`. On the UTF-8 bytes,
    /// not Characters: every request with a token passes here (every publish of a worker
    /// that authenticates), and counting and trimming Characters walked the whole token
    /// grapheme by grapheme, ~12 k instructions a publish (callgrind).
    private static func bearerRange<C: BidirectionalCollection>(_ u: C) -> Range<C.Index>? where C.Element == UInt8 {
        let isBlank = { (c: UInt8) in c == 0x20 || c == 0x09 }
        guard var start = u.firstIndex(where: { !isBlank($0) }) else { return nil }
        for expected in "bearer ".utf8 {
            // ASCII letters lower-cased by setting 0x20; the space must be a space.
            guard start != u.endIndex, u[start] | (expected == 0x20 ? 0 : 0x20) == expected else { return nil }
            start = u.index(after: start)
        }
        while start != u.endIndex, isBlank(u[start]) { start = u.index(after: start) }
        guard start != u.endIndex, let last = u.lastIndex(where: { !isBlank($0) }) else { return nil }
        return start..<u.index(after: last)
    }

    /// The first `name=value` pair in a `Cookie:` header (RFC 6265 §5.4); a value in
    /// double quotes loses them.
    static func cookie(_ header: String, named name: String) -> String? {
        for pair in header.split(separator: ";") {
            let p = pair.trimmingSpaces()
            guard let eq = p.firstIndex(of: "="), p[..<eq].trimmingSpaces() == name else { continue }
            var v = p[p.index(after: eq)...].trimmingSpaces()
            if v.count >= 2, v.first == "\"", v.last == "\"" { v = v.dropFirst().dropLast() }
            if !v.isEmpty { return String(v) }
        }
        return nil
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> SubSequence {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return self[endIndex...] }
        let end = lastIndex(where: { !isSpace($0) })!
        return self[start...end]
    }
}
