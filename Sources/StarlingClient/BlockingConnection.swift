// BlockingConnection: a plain blocking TCP client with deadlines, for tests and tools
// that need real sockets without an event loop. It speaks raw bytes; HTTPResponse and
// SSEStream read the protocol on top of it.
#if canImport(Glibc)
import Glibc
#endif
import StarlingCore

public struct ClientError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public final class BlockingConnection {
    public let fd: Int32
    /// Bytes read but not yet consumed by a parser.
    public var buffer: [UInt8] = []
    public private(set) var peerClosed = false

    public init(host: String = "127.0.0.1", port: Int, receiveBuffer: Int? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: \(errno)") }
        if let rb = receiveBuffer {
            var v = Int32(rb)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        let r = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { let e = errno; Glibc.close(fd); throw ClientError("connect \(host):\(port): errno \(e)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { Glibc.close(fd) }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError("send failed: errno \(errno)") }
            off += n
        }
    }

    /// Reads whatever arrives within `timeout` seconds into `buffer`; false on timeout.
    /// Sets `peerClosed` on EOF or reset.
    @discardableResult
    public func fill(timeout: Double) throws -> Bool {
        guard !peerClosed else { return false }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let r = poll(&pfd, 1, Int32(max(0, timeout * 1000)))
        if r == 0 { return false }
        guard r > 0 else { throw ClientError("poll failed") }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { peerClosed = true; return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// Reads until `done(buffer)` holds, the peer closes, or the deadline passes.
    public func read(until done: ([UInt8]) -> Bool, timeout: Double) throws {
        let deadline = Clock.now() + timeout
        while !done(buffer) {
            let left = deadline - Clock.now()
            if left <= 0 || peerClosed { return }
            try fill(timeout: left)
        }
    }

    /// Waits for EOF; true if the peer closed within `timeout`.
    public func waitForClose(timeout: Double) throws -> Bool {
        let deadline = Clock.now() + timeout
        while !peerClosed {
            let left = deadline - Clock.now()
            if left <= 0 { return false }
            try fill(timeout: left)
        }
        return true
    }

    public func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }
}

public enum Clock {
    /// Monotonic seconds.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
