// TCPServer: a listening libuv TCP socket that turns accepted sockets into Connections,
// refusing past the connection limit with a 503 and Retry-After (SPEC §7).
import CLibUV
import Logging
import StarlingCore

public final class TCPServer {
    let loop: EventLoop
    let limits: HTTPLimits
    weak var handler: HTTPHandler?
    let logger: Logger
    private let handle: UnsafeMutablePointer<uv_tcp_t>
    public private(set) var connectionCount = 0
    public private(set) var refusedCount = 0
    private var accepting = true
    private var open: Set<ObjectIdentifier> = []
    private var connections: [ObjectIdentifier: Connection] = [:]

    public init(loop: EventLoop, limits: HTTPLimits, handler: HTTPHandler, logger: Logger) {
        self.loop = loop
        self.limits = limits
        self.handler = handler
        self.logger = logger
        handle = .allocate(capacity: 1)
        uv_tcp_init(loop.uv, handle)
        handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    /// Binds and listens; returns the bound port (useful with port 0).
    public func listen(host: String, port: Int) throws -> Int {
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
        r = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(handle, $0, 0) }
        }
        guard r == 0 else { throw UVError(r, "bind \(host):\(port)") }
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
        uv_tcp_init(loop.uv, tcp)
        guard uv_accept(stream, UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_stream_t.self)) == 0 else {
            uv_close(UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_handle_t.self)) { $0?.deallocate() }
            return
        }
        uv_tcp_nodelay(tcp, 1)
        let c = Connection(loop: loop, tcp: tcp, server: self)
        guard accepting, connectionCount < limits.maxConnections, let handler else {
            refusedCount += 1
            let e = HTTPError(503, accepting ? "too_many_connections" : "draining",
                              accepting ? "the broker holds its maximum of \(limits.maxConnections) connections"
                                        : "the broker is shutting down",
                              headers: [("Retry-After", "1")])
            c.refuse(e.response)
            return
        }
        connectionCount += 1
        connections[ObjectIdentifier(c)] = c
        c.start(handler: handler)
    }

    func connectionClosed(_ c: Connection) {
        if connections.removeValue(forKey: ObjectIdentifier(c)) != nil { connectionCount -= 1 }
    }

    /// Stops accepting new connections (drain); existing ones stay.
    public func stopAccepting() {
        accepting = false
        uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self), nil)
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
