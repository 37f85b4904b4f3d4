// ListenAddress: the value of `listen`. `127.0.0.1:8080`, `:8080` (every IPv4
// interface, 0.0.0.0), `[::1]:8080` and `[::]:8080` (IPv6 literals in brackets), or a host
// name such as `localhost:8080`, resolved once at start-up to its first IPv4 address
// (else its first IPv6 one) — one socket, so the address it binds is never a surprise.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct ListenAddress: Equatable, Sendable, CustomStringConvertible {
    /// As written.
    public var text: String
    /// The numeric address to bind.
    public var bindHost: String
    public var port: Int

    public var description: String { text }

    public static func parse(_ text: String) throws(ConfigError) -> ListenAddress {
        let bad = { (why: String) in ConfigError(key: "listen", "'\(text)' \(why); use HOST:PORT, :PORT or [IPv6]:PORT") }
        guard let colon = text.lastIndex(of: ":") else { throw bad("has no port") }
        let portText = text[text.index(after: colon)...]
        guard let port = Int(portText), (0...65535).contains(port) else { throw bad("has no port from 0 to 65535") }
        var host = String(text[..<colon])
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { throw bad("has an unclosed [") }
            host = String(host.dropFirst().dropLast())
            guard isNumeric(host, family: AF_INET6) else { throw bad("has no IPv6 address between [ and ]") }
            return ListenAddress(text: text, bindHost: host, port: port)
        }
        if host.isEmpty { return ListenAddress(text: text, bindHost: "0.0.0.0", port: port) }
        if host.contains(":") { throw bad("has an IPv6 address without [ ]") }
        if isNumeric(host, family: AF_INET) { return ListenAddress(text: text, bindHost: host, port: port) }
        guard let resolved = resolve(host) else { throw bad("names a host that does not resolve") }
        return ListenAddress(text: text, bindHost: resolved, port: port)
    }

    static func isNumeric(_ host: String, family: Int32) -> Bool {
        var buf = [UInt8](repeating: 0, count: 16)
        return inet_pton(family, host, &buf) == 1
    }

    /// The host's first IPv4 address, else its first IPv6 one.
    static func resolve(_ host: String) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(list) }
        var v4: String?, v6: String?
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            var name = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &name, socklen_t(name.count), nil, 0, NI_NUMERICHOST) == 0 {
                let s = String(cString: name)
                if ai.pointee.ai_family == AF_INET, v4 == nil { v4 = s }
                if ai.pointee.ai_family == AF_INET6, v6 == nil { v6 = s }
            }
            p = ai.pointee.ai_next
        }
        return v4 ?? v6
    }
}
