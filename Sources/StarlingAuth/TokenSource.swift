// Where a request's token comes from (SPEC §7): `Authorization: Bearer` first, then
// `?access_token=` (a browser EventSource cannot send headers), then the cookie.
// The broker passes the raw candidates; nothing here touches the request.

extension Authorizer {
    public static func token(authorization: String?, queryAccessToken: String?, cookieHeader: String?,
                             cookieName: String) -> String? {
        if let authorization, let t = bearer(authorization) { return t }
        if let q = queryAccessToken, !q.isEmpty { return q }
        if let cookieHeader, let t = cookie(cookieHeader, named: cookieName) { return t }
        return nil
    }

    /// `Bearer <token>`, scheme case-insensitive (RFC 7235), spaces around trimmed.
    static func bearer(_ header: String) -> String? {
        let h = header.drop { $0 == " " || $0 == "\t" }
        guard h.count > 7, h.prefix(7).lowercased() == "bearer " else { return nil }
        let t = h.dropFirst(7).trimmingSpaces()
        return t.isEmpty ? nil : String(t)
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
