// Connection: one accepted TCP socket. Reads go through http_parser; everything written
// (answers and stream events alike) goes through one OutboundQueue, flushed with
// gathered writes (uv_try_write first, uv_write for the rest) once per loop turn.
// Pipelined answers leave in request order. Timeouts and heartbeats ride the loop's
// timer wheel: one scheduled deadline per connection, no OS timer.
import CHTTPParser
import CLibUV
import StarlingCore

public final class Connection: WheelTimed {
    enum State { case http, streaming, closing, closed }

    let loop: HTTPLoop
    private let tcp: UnsafeMutablePointer<uv_tcp_t>
    private unowned(unsafe) let server: TCPServer  // lives as long as the process
    private var parser: UnsafeMutablePointer<http_parser>?
    private weak var handler: HTTPHandler?
    public weak var streamDelegate: StreamDelegate?
    /// What the layer above hangs on this connection (the broker's subscriber).
    public var owner: AnyObject?

    var state = State.http
    var queue = OutboundQueue(capacity: .max)
    var isDirty = false
    public var wheelToken: UInt32 = 0
    private var writeInFlight = false
    private var closeAfterFlush = false

    // Timing, in loop milliseconds.
    private var lastReadMs: UInt64
    private var lastWriteMs: UInt64
    private var messageBeganMs: UInt64?
    private var scheduledMs: UInt64 = .max
    private var servedRequests = 0
    private var heartbeat: SharedBytes?
    private var heartbeatMs: UInt64 = 0

    // Request being parsed.
    private var url: [UInt8] = []
    private var headers: [(String, String)] = []
    private var field: [UInt8] = []
    private var value: [UInt8] = []
    private var lastWasValue = false
    private var headBytes = 0
    private var current: Request?
    private var currentBodyStream: BodyStream?
    private var failure: HTTPError?
    /// Set once nothing more may be parsed (an error answer, `Connection: close`, a stream).
    private var stopParsing = false
    /// Set by `drain`: the next answer is the last on this connection.
    private var draining = false

    // Answer ordering for pipelining.
    private var nextRequestSeq: UInt64 = 0
    private var nextAnswerSeq: UInt64 = 0
    private var heldAnswers: [UInt64: (bytes: [UInt8], close: Bool)] = [:]

    init(loop: HTTPLoop, tcp: UnsafeMutablePointer<uv_tcp_t>, server: TCPServer) {
        self.loop = loop
        self.tcp = tcp
        self.server = server
        lastReadMs = loop.nowMs
        lastWriteMs = lastReadMs
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    private var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_stream_t.self) }
    private var limits: HTTPLimits { server.limits }

    public var isOpen: Bool { state == .http || state == .streaming }
    /// Bytes queued for this client and not yet taken by the kernel.
    public var queuedBytes: Int { queue.totalBytes }

    // MARK: lifecycle

    func start(handler: HTTPHandler) {
        self.handler = handler
        let p = UnsafeMutablePointer<http_parser>.allocate(capacity: 1)
        http_parser_init(p, HTTP_REQUEST)
        p.pointee.data = tcp.pointee.data
        parser = p
        schedule(atMs: loop.nowMs + limits.headTimeoutMs)
        startReading()
    }

    /// Answers a connection over the limit and closes it, without parsing anything.
    func refuse(_ response: Response) {
        state = .http
        enqueueAnswer(response.serialized(close: true), close: true)
        startReading()
    }

    private func startReading() {
        uv_read_start(stream, { handle, _, buf in
            let loop = Unmanaged<Connection>.fromOpaque(handle!.pointee.data).takeUnretainedValue().loop
            buf!.pointee = uv_buf_init(loop.readBuffer.assumingMemoryBound(to: CChar.self), UInt32(loop.readBufferSize))
        }, { s, nread, buf in
            let c = Unmanaged<Connection>.fromOpaque(s!.pointee.data).takeUnretainedValue()
            if nread < 0 { c.close(); return }
            if nread > 0 { c.received(UnsafeRawBufferPointer(start: buf!.pointee.base, count: nread)) }
        })
    }

    /// Closes at once: pending bytes are dropped (a slow consumer, an abort).
    public func close() {
        guard state != .closed else { return }
        state = .closed
        loop.wheel.cancel(self)
        loop.backlogged[ObjectIdentifier(self)] = nil
        queue.removeAll()
        heldAnswers.removeAll()
        uv_read_stop(stream)
        uv_close(UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_handle_t.self)) { h in
            let c = Unmanaged<Connection>.fromOpaque(h!.pointee.data)
            h!.deallocate()
            c.release()
        }
        if let p = parser { p.deallocate(); parser = nil }
        server.connectionClosed(self)
        let delegate = streamDelegate
        streamDelegate = nil
        delegate?.streamDidClose(self)
        owner = nil
    }

    /// Drain (SIGTERM): a stream ends cleanly now; a request in progress, its body
    /// still arriving or its answer not yet sent, completes and then closes; an idle
    /// keep-alive connection closes at once.
    public func drain() {
        guard isOpen else { return }
        draining = true
        let busy = current != nil || messageBeganMs != nil || nextAnswerSeq != nextRequestSeq
        if state == .streaming || !busy { finish() }
    }

    /// Closes once everything queued is written: the end of an SSE response, an error.
    public func finish() {
        guard isOpen else { return }
        closeAfterFlush = true
        loop.markDirty(self)
    }

    /// After the last byte: send FIN, then keep reading (discarding) until the peer
    /// closes or a short linger passes, so unread input never turns our answer into a RST.
    private func shutdownGracefully() {
        state = .closing
        let req = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        let r = uv_shutdown(req, stream) { req, _ in req?.deallocate() }
        if r != 0 { req.deallocate(); close(); return }
        schedule(atMs: loop.nowMs + 2_000)
    }

    // MARK: reading

    private func received(_ bytes: UnsafeRawBufferPointer) {
        lastReadMs = loop.nowMs
        // Streams, closing sockets and connections past an error ignore further input.
        guard state == .http, !stopParsing, let p = parser else { return }
        let n = http_parser_execute(p, parserSettings, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
        let err = ParserFacts.errno(p)
        if err == HPE_PAUSED { return }  // became a stream: nothing more is parsed
        if let failure {
            self.failure = nil
            fail(failure)
        } else if err != HPE_OK {
            fail(HTTPError(400, "bad_request", "malformed HTTP request: \(ParserFacts.errorText(p))"))
        } else if n != bytes.count, p.pointee.upgrade == 1 {
            fail(HTTPError(400, "bad_request", "protocol upgrades are not supported"))
        }
    }

    /// Answers a protocol-level error in turn and closes the connection after it.
    private func fail(_ error: HTTPError) {
        guard state == .http, parser != nil else { return }
        stopParsing = true
        let seq: UInt64
        if let current { seq = current.sequence } else if messageBeganMs != nil { seq = nextRequestSeq - 1 } else {
            seq = nextRequestSeq; nextRequestSeq += 1
        }
        answer(seq: seq, bytes: error.response.serialized(close: true), close: true)
    }

    func parserMessageBegin() -> Int32 {
        url.removeAll(keepingCapacity: true)
        headers.removeAll()
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        lastWasValue = false
        headBytes = 0
        current = nil
        nextRequestSeq += 1
        let now = loop.nowMs
        messageBeganMs = now
        if now + limits.headTimeoutMs < scheduledMs { schedule(atMs: now + limits.headTimeoutMs) }
        return 0
    }

    func parserURL(_ b: UnsafeRawBufferPointer) -> Int32 {
        url.append(contentsOf: b)
        headBytes += b.count
        if url.count > limits.maxURLBytes {
            failure = HTTPError(414, "url_too_long", "the request URL is over \(limits.maxURLBytes) bytes")
            return 1
        }
        return 0
    }

    func parserHeaderField(_ b: UnsafeRawBufferPointer) -> Int32 {
        if lastWasValue { commitHeader() }
        field.append(contentsOf: b)
        return countHead(b.count)
    }

    func parserHeaderValue(_ b: UnsafeRawBufferPointer) -> Int32 {
        lastWasValue = true
        value.append(contentsOf: b)
        return countHead(b.count)
    }

    private func countHead(_ n: Int) -> Int32 {
        headBytes += n
        if headBytes > limits.maxHeadBytes {
            failure = HTTPError(431, "head_too_large", "the request head is over \(limits.maxHeadBytes) bytes")
            return 1
        }
        return 0
    }

    private func commitHeader() {
        // Lowercase the ASCII name in place: no second String per header.
        for k in field.indices where field[k] >= 0x41 && field[k] <= 0x5A { field[k] |= 0x20 }
        headers.append((String(decoding: field, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        lastWasValue = false
    }

    func parserHeadersComplete() -> Int32 {
        // On this callback 1 and 2 mean "no body" to http_parser; -1 is the error.
        guard let p = parser else { return -1 }
        if lastWasValue || !field.isEmpty { commitHeader() }
        if url.count > limits.maxURLBytes || headBytes > limits.maxHeadBytes { return -1 }
        let length = ParserFacts.contentLength(p)
        let request = Request(method: ParserFacts.method(p), target: String(decoding: url, as: UTF8.self),
                              headers: headers, keepAlive: ParserFacts.keepAlive(p), sequence: nextRequestSeq - 1)
        current = request
        messageBeganMs = nil
        currentBodyStream = handler?.bodyStream(for: request, on: self)
        if currentBodyStream == nil, length != UInt64.max, length > UInt64(limits.maxBodyBytes) {
            failure = HTTPError(413, "body_too_large", "the request body is over \(limits.maxBodyBytes) bytes")
            return -1
        }
        // curl and others wait for this before sending a body (a second, otherwise).
        if request.sequence == nextAnswerSeq, request.header("expect")?.lowercased() == "100-continue" {
            queue.pushUnbounded(.init(Connection.continueBytes))
            loop.markDirty(self)
        }
        return 0
    }

    static let continueBytes = SharedBytes("HTTP/1.1 100 Continue\r\n\r\n")

    func parserBody(_ b: UnsafeRawBufferPointer) -> Int32 {
        guard let r = current else { return 1 }
        if let stream = currentBodyStream {
            stream.receive(b)
            return 0
        }
        if r.body.count + b.count > limits.maxBodyBytes {
            failure = HTTPError(413, "body_too_large", "the request body is over \(limits.maxBodyBytes) bytes")
            return 1
        }
        r.body.append(contentsOf: b)
        return 0
    }

    func parserMessageComplete() -> Int32 {
        guard let r = current, let p = parser else { return 1 }
        current = nil
        servedRequests += 1
        let idleDue = loop.nowMs + limits.idleTimeoutMs
        if idleDue < scheduledMs { schedule(atMs: idleDue) }
        if let stream = currentBodyStream {
            currentBodyStream = nil
            stream.end()
        } else {
            handler?.handle(r, on: self)
        }
        // Nothing is read after a `Connection: close` request or once the connection
        // became a stream; pausing makes http_parser_execute return at once.
        if !r.keepAlive || state == .streaming {
            stopParsing = true
            http_parser_pause(p, 1)
        }
        return 0
    }

    // MARK: answering

    /// Sends `response` as the answer to `request`, after the answers to earlier requests.
    public func respond(to request: Request, _ response: Response, close forceClose: Bool = false) {
        let close = forceClose || !request.keepAlive || draining
        answer(seq: request.sequence, bytes: response.serialized(close: close), close: close)
    }

    private func answer(seq: UInt64, bytes: [UInt8], close: Bool) {
        guard state == .http || state == .streaming else { return }
        if seq != nextAnswerSeq {
            heldAnswers[seq] = (bytes, close)
            return
        }
        enqueueAnswer(bytes, close: close)
        nextAnswerSeq += 1
        while let held = heldAnswers.removeValue(forKey: nextAnswerSeq) {
            enqueueAnswer(held.bytes, close: held.close)
            nextAnswerSeq += 1
        }
    }

    private func enqueueAnswer(_ bytes: [UInt8], close: Bool) {
        guard !closeAfterFlush else { return }
        queue.pushUnbounded(.init(SharedBytes(bytes)))
        if close {
            closeAfterFlush = true
            stopParsing = true  // nothing after this answer will be read or answered
            currentBodyStream = nil
        }
        loop.markDirty(self)
    }

    // MARK: streaming

    /// Turns this connection into a long-lived stream answering `request`: sends the head
    /// and `opening` bytes, bounds the queue at `capacity`, and sends `heartbeat` after
    /// `heartbeatMs` without a write.
    public func startStream(to request: Request, head: Response, opening: SharedBytes, capacity: Int,
                            heartbeat: SharedBytes, heartbeatMs: UInt64, delegate: StreamDelegate) {
        guard state == .http else { return }
        state = .streaming
        streamDelegate = delegate
        // A stream reads no more requests: give back the parse buffers (idle memory).
        url = []; field = []; value = []; headers = []
        answer(seq: request.sequence, bytes: head.serialized(close: true, stream: true), close: false)
        queue.pushUnbounded(.init(opening))
        queue.capacity = capacity
        self.heartbeat = heartbeat
        self.heartbeatMs = max(100, heartbeatMs)
        schedule(atMs: loop.nowMs + self.heartbeatMs)
    }

    /// Queues shared bytes on a stream. `.overflow` means the client is too slow: the
    /// caller decides (the broker disconnects it).
    public func send(_ bytes: SharedBytes, conflate: String? = nil) -> OutboundQueue.PushResult {
        guard state == .streaming, !closeAfterFlush else { return .queued }
        queue.pushUnbounded(.init(bytes, conflate: conflate))
        loop.markDirty(self)
        guard queue.totalBytes > queue.capacity else { return .queued }
        // Over the bound: first let the kernel take what it can (a big batch can arrive
        // between two loop turns), then drop superseded snapshots, and only then give up.
        flush(notify: false)
        return isOpen ? queue.relieve() : .queued
    }

    // MARK: writing

    /// Writes what is queued; `notify` lets a drained stream ask its delegate for more
    /// (off when called from inside `send`, which the delegate itself is calling).
    func flush(notify: Bool = true) {
        guard isOpen, !writeInFlight else { return }
        while queue.hasPending {
            let count = min(queue.pendingCount, 64)
            let outcome: Int32 = withUnsafeTemporaryAllocation(of: uv_buf_t.self, capacity: count) { bufs in
                var k = 0
                var total = 0
                queue.forEachPending(maxItems: count) { p, n in
                    bufs[k] = uv_buf_init(UnsafeMutableRawPointer(mutating: p).assumingMemoryBound(to: CChar.self), UInt32(n))
                    total += n
                    k += 1
                }
                let r = uv_try_write(stream, bufs.baseAddress, UInt32(k))
                if r < 0, r != UV_EAGAIN.rawValue { return r }
                let written = max(0, Int(r))
                if written > 0 { queue.consume(written); lastWriteMs = loop.nowMs }
                if written == total { return 0 }
                // The kernel buffer is full: hand the rest of this batch to uv_write and
                // wait for its callback before writing more.
                let remaining = count - countFullyWritten(written, bufs: bufs, k: k)
                return writeAsync(items: remaining)
            }
            if outcome < 0 { close(); return }
            if writeInFlight { return }
        }
        if notify { drained() }
    }

    /// How many of the first `k` buffers `written` bytes covered completely.
    private func countFullyWritten(_ written: Int, bufs: UnsafeMutableBufferPointer<uv_buf_t>, k: Int) -> Int {
        var left = written
        var full = 0
        while full < k, left >= Int(bufs[full].len) { left -= Int(bufs[full].len); full += 1 }
        return full
    }

    private func writeAsync(items: Int) -> Int32 {
        let context = WriteContext(count: items)
        var k = 0
        queue.forEachPending(maxItems: items) { p, n in
            context.bufs[k] = uv_buf_init(UnsafeMutableRawPointer(mutating: p).assumingMemoryBound(to: CChar.self), UInt32(n))
            k += 1
        }
        let detached = queue.detach(items)
        context.items = detached.items
        context.bytes = detached.bytes
        context.connection = self
        context.request.pointee.data = Unmanaged.passRetained(context).toOpaque()
        let r = uv_write(context.request, stream, context.bufs, UInt32(k)) { req, status in
            let ctx = Unmanaged<WriteContext>.fromOpaque(req!.pointee.data).takeRetainedValue()
            ctx.connection?.writeCompleted(bytes: ctx.bytes, status: status)
            ctx.connection = nil
        }
        if r < 0 {
            Unmanaged<WriteContext>.fromOpaque(context.request.pointee.data).release()
            queue.completeInFlight(detached.bytes)
            return r
        }
        writeInFlight = true
        loop.backlogged[ObjectIdentifier(self)] = self
        return 0
    }

    private func writeCompleted(bytes: Int, status: Int32) {
        queue.completeInFlight(bytes)
        writeInFlight = false
        guard isOpen else { return }
        if status < 0 { close(); return }
        lastWriteMs = loop.nowMs
        flush()
        if !writeInFlight { loop.backlogged[ObjectIdentifier(self)] = nil }
    }

    private func drained() {
        guard queue.isIdle else { return }
        if closeAfterFlush {
            shutdownGracefully()
            return
        }
        if state == .streaming { streamDelegate?.streamHasRoom(self) }
    }

    // MARK: timers

    private func schedule(atMs deadline: UInt64) {
        scheduledMs = deadline
        loop.wheel.schedule(self, atMs: deadline)
    }

    func timerFired(nowMs now: UInt64) {
        scheduledMs = .max
        switch state {
        case .closed:
            return
        case .closing:
            close()
        case .streaming:
            let due = lastWriteMs + heartbeatMs
            if now >= due {
                if let heartbeat, queue.isIdle {
                    queue.pushUnbounded(.init(heartbeat))
                    loop.markDirty(self)
                }
                schedule(atMs: now + heartbeatMs)
            } else {
                schedule(atMs: due)
            }
        case .http:
            if let began = messageBeganMs {
                let due = began + limits.headTimeoutMs
                if now >= due {
                    fail(HTTPError(408, "head_timeout", "the request head did not arrive within \(limits.headTimeoutMs) ms"))
                } else {
                    schedule(atMs: due)
                }
                return
            }
            // Between requests: the first request must start within the head timeout,
            // later ones within the keep-alive idle timeout. Never cut an answer short.
            let wait = servedRequests == 0 ? limits.headTimeoutMs : limits.idleTimeoutMs
            let due = max(lastReadMs, lastWriteMs) + wait
            if now >= due, queue.isIdle, heldAnswers.isEmpty, nextAnswerSeq == nextRequestSeq {
                close()
            } else {
                schedule(atMs: max(due, now + 100))
            }
        }
    }
}

/// Keeps a gathered write's buffers and the shared bytes they point into alive until
/// libuv calls back.
final class WriteContext {
    let request: UnsafeMutablePointer<uv_write_t>
    let bufs: UnsafeMutablePointer<uv_buf_t>
    var items: [SharedBytes] = []
    var bytes = 0
    var connection: Connection?

    init(count: Int) {
        request = .allocate(capacity: 1)
        bufs = .allocate(capacity: max(1, count))
    }

    deinit {
        request.deallocate()
        bufs.deallocate()
    }
}
