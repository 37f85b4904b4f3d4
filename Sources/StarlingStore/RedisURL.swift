// RedisURL: `redis[s]://[user][:password]@host[:port][/db]`, the value of `--redis`.
// A user (Redis 6 ACL) makes the handshake `AUTH user password`; `rediss://` (TLS) is
// parsed so the broker can refuse it by name: Debian 12's hiredis 0.14 has no TLS.

public struct RedisURL: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var db: Int
    /// An ACL user (Redis 6+); nil: the `default` user.
    public var username: String?
    public var password: String?
    /// `rediss://`: TLS, which this build cannot speak (see docs/redis.md).
    public var tls: Bool

    public init(host: String = "127.0.0.1", port: Int = 6379, db: Int = 0, username: String? = nil, password: String? = nil,
                tls: Bool = false) {
        self.host = host; self.port = port; self.db = db; self.username = username; self.password = password; self.tls = tls
    }

    /// Parses the URL; nil when it is not a `redis://` or `rediss://` URL.
    public init?(_ text: String) {
        let tls = text.hasPrefix("rediss://")
        guard tls || text.hasPrefix("redis://") else { return nil }
        var rest = Substring(text.dropFirst(tls ? "rediss://".count : "redis://".count))
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            if !path.isEmpty {
                guard let n = Int(path), n >= 0 else { return nil }
                db = n
            }
            rest = rest[..<slash]
        }
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let auth = rest[..<at]
            // `user:password`, `:password` or `user` (URL syntax; percent-escapes decoded).
            if let colon = auth.firstIndex(of: ":") {
                password = Self.percentDecoded(auth[auth.index(after: colon)...])
                if colon > auth.startIndex { username = Self.percentDecoded(auth[..<colon]) }
            } else if !auth.isEmpty {
                username = Self.percentDecoded(auth)
            }
            rest = rest[rest.index(after: at)...]
        }
        var host = String(rest)
        var port = 6379
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let p = Int(rest[rest.index(after: colon)...]), p > 0, p < 65536 else { return nil }
            port = p
            host = String(rest[..<colon])
        }
        host = host.trimmingBrackets()
        if host.isEmpty { host = "127.0.0.1" }
        self.init(host: host, port: port, db: db, username: username, password: password, tls: tls)
    }

    /// The URL without the password, for logs.
    public var description: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(tls ? "rediss" : "redis")://\(username.map { "\($0)@" } ?? "")\(host):\(port)/\(db)"
    }

    private static func percentDecoded(_ s: Substring) -> String {
        guard s.contains("%") else { return String(s) }
        var out: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            if u[i] == 0x25, i + 2 < u.count, let v = UInt8(String(decoding: u[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(v); i += 3
            } else {
                out.append(u[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    fileprivate func trimmingBrackets() -> String {
        hasPrefix("[") && hasSuffix("]") ? String(dropFirst().dropLast()) : self
    }
}
