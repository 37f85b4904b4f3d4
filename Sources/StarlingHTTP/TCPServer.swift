// TCPServer: a listening libuv TCP socket that turns accepted sockets into Connections,
// refusing past the connection limit with a 503 and Retry-After (SPEC §7). With several
// loops each has its own TCPServer on the same port (SO_REUSEPORT: the kernel spreads
// new connections over them) and all draw on one process-wide ConnectionBudget.
import CLibUV
import Logging
import StarlingCore
import StarlingLoop
#if canImport(Glibc)
import Glibc
#endif

public final class TCPServer {
    let loop: HTTPLoop
    let limits: HTTPLimits
    let budget: ConnectionBudget
    // unowned(unsafe): the handler (the broker) owns this server and lives as long as the
    // process; a weak reference would give it a side table (slow retains on every request).
    unowned(unsafe) let handler: HTTPHandler
    let logger: Logger
    private let handle: UnsafeMutablePointer<uv_tcp_t>
    public private(set) var connectionCount = 0
    public private(set) var refusedCount = 0
    private var accepting = true
    private var open: Set<ObjectIdentifier> = []
    private var connections: [ObjectIdentifier: Connection] = [:]

    public init(loop: HTTPLoop, limits: HTTPLimits, budget: ConnectionBudget, handler: HTTPHandler, logger: Logger) {
        self.loop = loop
        self.limits = limits
        self.budget = budget
        self.handler = handler
        self.logger = logger
        handle = .allocate(capacity: 1)
        uv_tcp_init(loop.loop.uv, handle)
        handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    /// Binds and listens; returns the bound port (useful with port 0). `sharedPort` lets
    /// other loops' servers listen on the same port (SO_REUSEPORT).
    public func listen(host: String, port: Int, sharedPort: Bool = false) throws -> Int {
        var addr = sockaddr_storage()
        var r = withUnsafeMutablePointer(to: &addr) { p -> Int32 in
            p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_addr(host, Int32(port), $0) }
        }
        if r != 0 {
            r = withUnsafeMutablePointer(to: &addr) { p -> Int32 in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_addr(host, Int32(port), $0) }
            }
        }
        guard r == 0 else { throw UVError(r, "bad listen address \(host)") }
        // The socket is made by hand: Debian's libuv 1.44 has no UV_TCP_REUSEPORT.
        let fd = socket(Int32(addr.ss_family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw UVError(-errno, "socket for \(host):\(port)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if sharedPort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        let addrLength = socklen_t(addr.ss_family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        r = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, addrLength) }
        }
        guard r == 0 else { let e = errno; close(fd); throw UVError(-e, "bind \(host):\(port)") }
        r = uv_tcp_open(handle, uv_os_sock_t(fd))
        guard r == 0 else { close(fd); throw UVError(r, "open \(host):\(port)") }
        r = uv_listen(stream, 4096) { server, status in
            guard status == 0, let server else { return }
            Unmanaged<TCPServer>.fromOpaque(server.pointee.data).takeUnretainedValue().accept()
        }
        guard r == 0 else { throw UVError(r, "listen \(host):\(port)") }
        var bound = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getsockname(handle, $0, &len) }
        }
        let family = bound.ss_family
        return withUnsafePointer(to: &bound) { p -> Int in
            if family == sa_family_t(AF_INET6) {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_stream_t.self) }

    private func accept() {
        let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        uv_tcp_init(loop.loop.uv, tcp)
        guard uv_accept(stream, UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_stream_t.self)) == 0 else {
            uv_close(UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_handle_t.self)) { $0?.deallocate() }
            return
        }
        uv_tcp_nodelay(tcp, 1)
        let c = Connection(loop: loop, tcp: tcp, server: self)
        c.peerAddress = Self.peerAddress(tcp)
        let refusal: HTTPError?
        if !accepting {
            refusal = HTTPError(503, "draining", "the broker is shutting down", headers: [("Retry-After", "1")])
        } else {
            switch budget.take(address: c.peerAddress) {
            case .taken: refusal = nil
            case .overTotal:
                refusal = HTTPError(503, "too_many_connections", "the broker holds its maximum of \(budget.limit) connections",
                                    headers: [("Retry-After", "1")])
            case .overAddress:
                refusal = HTTPError(503, "too_many_connections_from_address",
                                    "this address holds its maximum of \(budget.perAddressLimit ?? 0) connections",
                                    headers: [("Retry-After", "1")])
            }
        }
        if let refusal {
            refusedCount += 1
            c.refuse(refusal.response)
            return
        }
        connectionCount += 1
        connections[ObjectIdentifier(c)] = c
        c.start(handler: handler)
    }

    func connectionClosed(_ c: Connection) {
        if connections.removeValue(forKey: ObjectIdentifier(c)) != nil {
            connectionCount -= 1
            budget.giveBack(address: c.peerAddress)
        }
    }

    /// Stops accepting new connections (drain); existing ones stay.
    public func stopAccepting() {
        accepting = false
        uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self), nil)
    }

    /// The peer's IP address as text ("" when unknown), the key of the per-address limit.
    private static func peerAddress(_ tcp: UnsafeMutablePointer<uv_tcp_t>) -> String {
        var peer = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        let r = withUnsafeMutablePointer(to: &peer) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getpeername(tcp, $0, &len) }
        }
        guard r == 0 else { return "" }
        var text = [CChar](repeating: 0, count: 64)
        let family = Int32(peer.ss_family)
        _ = withUnsafePointer(to: &peer) { p -> Int32 in
            family == AF_INET6
                ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_name($0, &text, text.count) }
                : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_name($0, &text, text.count) }
        }
        return String(cString: text)
    }

    /// Every open connection, for a drain.
    public var openConnections: [Connection] { Array(connections.values) }
}

public struct UVError: Error, CustomStringConvertible {
    public let code: Int32
    public let context: String
    public init(_ code: Int32, _ context: String) { self.code = code; self.context = context }
    public var description: String { "\(context): \(String(cString: uv_strerror(code)))" }
}
