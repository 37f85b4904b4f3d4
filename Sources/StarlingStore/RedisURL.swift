// RedisURL: `redis://[:password@]host[:port][/db]`, the value of `--redis`.

public struct RedisURL: Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var db: Int
    public var password: String?

    public init(host: String = "127.0.0.1", port: Int = 6379, db: Int = 0, password: String? = nil) {
        self.host = host; self.port = port; self.db = db; self.password = password
    }

    /// Parses the URL; nil when it is not a `redis://` URL this engine can use.
    public init?(_ text: String) {
        guard text.hasPrefix("redis://") else { return nil }
        var rest = Substring(text.dropFirst("redis://".count))
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            if !path.isEmpty {
                guard let n = Int(path), n >= 0 else { return nil }
                db = n
            }
            rest = rest[..<slash]
        }
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let auth = rest[..<at]
            // `user:password` or `:password`; ACL users are not supported, only the password.
            password = auth.firstIndex(of: ":").map { String(auth[auth.index(after: $0)...]) } ?? String(auth)
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
        self.init(host: host, port: port, db: db, password: password)
    }

    /// The URL without the password, for logs.
    public var description: String { "redis://\(host):\(port)/\(db)" }
}

extension String {
    fileprivate func trimmingBrackets() -> String {
        hasPrefix("[") && hasSuffix("]") ? String(dropFirst().dropLast()) : self
    }
}
