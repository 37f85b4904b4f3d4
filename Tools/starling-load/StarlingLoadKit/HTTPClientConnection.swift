// HTTPClientConnection: one client TCP socket on libuv (optionally bound to a chosen
// loopback source address before connect) with Node's http_parser reading responses.
// Pipelined keep-alive answers and close-delimited SSE bodies both come out as
// head / body / complete callbacks. Thin wrapper: unsafe code stays in this file.
import CHTTPParser
import CLibUV
import StarlingLoop
#if canImport(Glibc)
import Glibc
#endif

public protocol HTTPClientDelegate: AnyObject {
    func connectionDidConnect(_ c: HTTPClientConnection)
    func connection(_ c: HTTPClientConnection, didReceiveHead status: Int)
    /// Body bytes as they arrive (an SSE stream's events, a publish answer's JSON).
    func connection(_ c: HTTPClientConnection, didReceiveBody bytes: [UInt8])
    func connectionDidCompleteResponse(_ c: HTTPClientConnection)
    /// The socket is gone: `error` is nil for a clean end of stream from the peer.
    func connection(_ c: HTTPClientConnection, didCloseWith error: String?)
}

/// One read buffer for every connection of a loop: libuv fills it and the read callback
/// consumes it before the next read, so 20,000 idle sockets own no read buffer. One per
/// loop (never shared across threads); each connection holds it.
public final class ReadBuffer {
    let base: UnsafeMutableRawPointer
    let size: Int

    public init(size: Int = 256 * 1024) {
        self.size = size
        base = .allocate(byteCount: size, alignment: 16)
    }

    deinit { base.deallocate() }
}

public final class HTTPClientConnection {
    private let readBuffer: ReadBuffer
    private let tcp: UnsafeMutablePointer<uv_tcp_t>
    private let parser: UnsafeMutablePointer<http_parser>
    public weak var delegate: HTTPClientDelegate?
    public private(set) var isOpen = false
    private var closed = false
    /// Whether the body of the current response is wanted (publish answers are not).
    public var deliversBody = true

    public init(loop: EventLoop, readBuffer: ReadBuffer, delegate: HTTPClientDelegate) {
        self.readBuffer = readBuffer
        self.delegate = delegate
        tcp = .allocate(capacity: 1)
        uv_tcp_init(loop.uv, tcp)
        parser = .allocate(capacity: 1)
        http_parser_init(parser, HTTP_RESPONSE)
        // Released in the close callback: the socket keeps its Swift side alive.
        let me = Unmanaged.passRetained(self).toOpaque()
        tcp.pointee.data = me
        parser.pointee.data = me
    }

    private var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_stream_t.self) }

    /// Connects to host:port (IPv4), from `source` (an IPv4 address, port chosen by the
    /// kernel) when given; returns a libuv error name if it could not even start.
    public func connect(host: String, port: Int, source: String?) -> String? {
        if let source {
            var local = sockaddr_in()
            uv_ip4_addr(source, 0, &local)
            let r = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(tcp, $0, 0) }
            }
            if r != 0 { return errorName(r) }
        }
        var remote = sockaddr_in()
        uv_ip4_addr(host, Int32(port), &remote)
        let req = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        let r = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                uv_tcp_connect(req, tcp, $0) { req, status in
                    let c = Unmanaged<HTTPClientConnection>.fromOpaque(req!.pointee.handle.pointee.data).takeUnretainedValue()
                    req!.deallocate()
                    c.connected(status: status)
                }
            }
        }
        if r != 0 { req.deallocate(); return errorName(r) }
        return nil
    }

    private func connected(status: Int32) {
        guard !closed else { return }
        if status != 0 { finish(error: "connect: \(errorName(status))"); return }
        isOpen = true
        uv_tcp_nodelay(tcp, 1)
        startReading()
        delegate?.connectionDidConnect(self)
    }

    private func startReading() {
        uv_read_start(stream, { h, _, buf in
            let b = Unmanaged<HTTPClientConnection>.fromOpaque(h!.pointee.data).takeUnretainedValue().readBuffer
            buf!.pointee = uv_buf_init(b.base.assumingMemoryBound(to: CChar.self), UInt32(b.size))
        }, { s, nread, buf in
            let c = Unmanaged<HTTPClientConnection>.fromOpaque(s!.pointee.data).takeUnretainedValue()
            if nread == Int(UV_EOF.rawValue) { c.endOfStream(); return }
            if nread < 0 { c.finish(error: "read: \(errorName(Int32(nread)))"); return }
            if nread > 0 { c.received(buf!.pointee.base, nread) }
        })
    }

    /// Stops reading for good: a slow consumer whose kernel buffers then fill up.
    public func stopReading() {
        guard isOpen else { return }
        uv_read_stop(stream)
    }

    /// Shrinks the socket's receive buffer, so a consumer that stops reading backs the
    /// server up sooner (the slow scenario).
    public func setReceiveBuffer(_ bytes: Int32) {
        var fd = uv_os_fd_t()
        guard uv_fileno(UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_handle_t.self), &fd) == 0 else { return }
        var v = bytes
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    private func received(_ base: UnsafeMutablePointer<CChar>!, _ n: Int) {
        let used = http_parser_execute(parser, responseSettings, base, n)
        if parser.pointee.http_errno != HPE_OK.rawValue || used != n {
            let text = String(cString: http_errno_description(http_errno(rawValue: UInt32(parser.pointee.http_errno))))
            finish(error: "bad HTTP response: \(text)")
        }
    }

    private func endOfStream() {
        // A close-delimited body (SSE) ends here; http_parser learns it from a zero-length feed.
        http_parser_execute(parser, responseSettings, nil, 0)
        finish(error: nil)
    }

    /// Sends bytes: straight into the kernel when it has room, else queued in libuv.
    public func write(_ bytes: [UInt8]) {
        guard isOpen, !bytes.isEmpty else { return }
        var written = 0
        bytes.withUnsafeBufferPointer { p in
            var buf = uv_buf_init(UnsafeMutableRawPointer(mutating: p.baseAddress!).assumingMemoryBound(to: CChar.self), UInt32(p.count))
            let r = uv_try_write(stream, &buf, 1)
            if r > 0 { written = Int(r) }
        }
        guard written < bytes.count else { return }
        let rest = PendingWrite(Array(bytes[written...]))
        let req = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        req.pointee.data = Unmanaged.passRetained(rest).toOpaque()
        var buf = uv_buf_init(rest.base, UInt32(rest.count))
        let r = uv_write(req, stream, &buf, 1) { req, status in
            Unmanaged<PendingWrite>.fromOpaque(req!.pointee.data).release()
            req!.deallocate()
            _ = status  // a failed write also fails the read side, which reports it
        }
        if r != 0 {
            Unmanaged<PendingWrite>.fromOpaque(req.pointee.data).release()
            req.deallocate()
            finish(error: "write: \(errorName(r))")
        }
    }

    /// Closes the socket (no callback to the delegate: the caller asked for it).
    public func close() {
        delegate = nil
        finish(error: nil)
    }

    private func finish(error: String?) {
        guard !closed else { return }
        closed = true
        isOpen = false
        let d = delegate
        delegate = nil
        uv_close(UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_handle_t.self)) { h in
            let c = Unmanaged<HTTPClientConnection>.fromOpaque(h!.pointee.data)
            c.release()
        }
        d?.connection(self, didCloseWith: error)
    }

    deinit {
        tcp.deallocate()
        parser.deallocate()
    }

    // Parser events, from the C callbacks below.
    fileprivate func parserHead() -> Int32 {
        delegate?.connection(self, didReceiveHead: Int(parser.pointee.status_code))
        return 0
    }
    fileprivate func parserBody(_ at: UnsafePointer<CChar>!, _ n: Int) -> Int32 {
        guard deliversBody, let d = delegate else { return 0 }
        let bytes = Array(UnsafeRawBufferPointer(start: at, count: n))
        d.connection(self, didReceiveBody: bytes)
        return 0
    }
    fileprivate func parserComplete() -> Int32 {
        delegate?.connectionDidCompleteResponse(self)
        return 0
    }
}

/// Bytes a uv_write still needs; freed in its callback.
private final class PendingWrite {
    let base: UnsafeMutablePointer<CChar>
    let count: Int
    init(_ bytes: [UInt8]) {
        count = bytes.count
        base = .allocate(capacity: count)
        bytes.withUnsafeBytes { UnsafeMutableRawPointer(base).copyMemory(from: $0.baseAddress!, byteCount: count) }
    }
    deinit { base.deallocate() }
}

private func errorName(_ code: Int32) -> String { String(cString: uv_err_name(code)) }

private func connectionOf(_ p: UnsafeMutablePointer<http_parser>?) -> HTTPClientConnection {
    Unmanaged<HTTPClientConnection>.fromOpaque(p!.pointee.data).takeUnretainedValue()
}

// Written once here, only read afterwards (by any loop's thread): safe to share.
nonisolated(unsafe) private let responseSettings: UnsafeMutablePointer<http_parser_settings> = {
    let s = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
    s.initialize(to: http_parser_settings())
    s.pointee.on_headers_complete = { p in connectionOf(p).parserHead() }
    s.pointee.on_body = { p, at, n in connectionOf(p).parserBody(at, n) }
    s.pointee.on_message_complete = { p in connectionOf(p).parserComplete() }
    return s
}()
