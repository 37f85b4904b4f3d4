// Connection: one accepted TCP socket. Requests are read by http_parser into a
// RequestReader; answers leave in request order through AnswerOrder; everything written
// (answers and stream events alike) goes through one OutboundQueue, flushed with gathered
// writes once per loop turn (Connection+Writing.swift). Timeouts and heartbeats ride the
// loop's timer wheel (Connection+Timers.swift): one deadline per connection, no OS timer.
//
// Lifecycle: `http` (requests and answers) → optionally `streaming` (an SSE response:
// nothing more is read) → `closing` (last byte sent, FIN sent, lingering) → `closed`.
import CHTTPParser
import CLibUV
import StarlingCore

public final class Connection: WheelTimed {
    enum State { case http, streaming, closing, closed }

    // The fields every delivery and write reads come first, on the object's first two
    // cache lines (Swift keeps a class's stored properties in the order written): with
    // thousands of connections each is cold when its next event arrives.
    let loop: HTTPLoop
    /// The accepted socket's descriptor, for the direct writes of Connection+Writing.swift.
    let fd: Int32
    var state = State.http
    var isDirty = false
    var writeInFlight = false
    /// Set once the last answer is queued: close when the queue is written.
    var closeAfterFlush = false
    /// Whether the stream delegate hears `streamHasRoom` when the queue drains. A live
    /// subscription has no use for it (only a replay waits for room), and not calling it
    /// spares the delivery path a cold object per write.
    public var wantsRoom = true
    var queue = OutboundQueue(capacity: .max)
    /// Answers due and not yet queued: every answer of a batch of pipelined requests is
    /// serialized here, back to back, and queued as one buffer (`sealAnswers`) before
    /// anything else is queued and when the loop turn flushes: one allocation and one
    /// iovec per batch, not per answer.
    var answerBuffer: [UInt8] = []
    public var streamDelegate: StreamDelegate?  // not weak: see `handler` below
    /// Loop milliseconds of the last write.
    var lastWriteMs: UInt64
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    unowned(unsafe) let server: TCPServer  // lives as long as the process
    private var parser: UnsafeMutablePointer<http_parser>?
    // Neither reference is weak: a weak reference gives its object a side table, and every
    // retain and release of that object then takes the slow path through it (a cold cache
    // line per publish and per delivery). The handler (the broker) owns the server and
    // outlives every connection; the stream delegate is dropped when the connection closes
    // (or the ingest stream ends), which breaks the cycle with the subscription.
    private unowned(unsafe) var handler: HTTPHandler?
    /// What the layer above hangs on this connection (the broker's subscriber).
    public var owner: AnyObject?
    /// The peer's IP address, for the per-address connection limit.
    var peerAddress = ""

    public var wheelToken: UInt32 = 0
    /// How long a graceful close keeps reading after the last byte. A refused streaming
    /// publish shortens it: the close is what fails the worker's next write.
    public var lingerMs: UInt64 = 2_000

    // Timing, in loop milliseconds.
    var lastReadMs: UInt64
    var scheduledMs: UInt64 = .max
    var servedRequests = 0
    /// A request came before the previous answer was written: the client pipelines.
    private var pipelines = false
    /// The loop's clock (ms) when the last answer was queued; 0: none yet.
    private var lastAnswerMs: UInt64 = 0
    /// The request being answered came from a client that waits on each answer: the turn
    /// that answers it does not sleep out the loop's pace (EventLoop.expediteTurn).
    private var answerExpedites = false
    var heartbeat: SharedBytes?
    var heartbeatMs: UInt64 = 0

    var reader: RequestReader
    var answers = AnswerOrder()
    /// Requests handed to the handler (or ended as streaming bodies), in sequence order.
    private var handled: UInt64 = 0
    private var currentBodyStream: BodyStream?
    /// An error a parser callback found, answered once http_parser returns.
    private var failure: HTTPError?
    /// Set once no further request may be handled (an error answer, `Connection: close`,
    /// a stream, a drain).
    private var stopParsing = false
    /// Set by `drain`: the last request handled gets the last answer, with `close`.
    private var draining = false

    init(loop: HTTPLoop, tcp: UnsafeMutablePointer<uv_tcp_t>, server: TCPServer) {
        self.loop = loop
        self.tcp = tcp
        self.server = server
        var fd: uv_os_fd_t = -1
        let handle = UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_handle_t.self)
        precondition(uv_fileno(handle, &fd) == 0, "an accepted socket has a descriptor")
        self.fd = fd
        reader = RequestReader(limits: server.limits)
        lastReadMs = loop.nowMs
        lastWriteMs = lastReadMs
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_stream_t.self) }
    var limits: HTTPLimits { server.limits }

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
        answerBuffer = []
        answers.removeAll()
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

    /// Drain (SIGTERM). A stream ends cleanly now. Otherwise no request after the ones
    /// already handled is handled: a body still arriving completes and is handled, every
    /// handled request is answered, the last answer carries `Connection: close`, and a
    /// request not yet handled (a head half read, pipelined bytes behind) is neither
    /// stored nor answered: the connection closes, so the client may retry it safely.
    public func drain() {
        guard isOpen else { return }
        draining = true
        if state == .streaming { return finish() }
        if reader.state == .body { return }  // parserMessageComplete stops reading after it
        stopReading()
        if answers.answeredAll(handled) { finish() }
    }

    /// Closes once everything queued is written: the end of an SSE response, an error.
    public func finish() {
        guard isOpen else { return }
        closeAfterFlush = true
        loop.markDirty(self)
    }

    /// After the last byte: send FIN, then keep reading (discarding) until the peer
    /// closes or a short linger passes, so unread input never turns our answer into a RST.
    func shutdownGracefully() {
        state = .closing
        let req = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        let r = uv_shutdown(req, stream) { req, _ in req?.deallocate() }
        if r != 0 { req.deallocate(); close(); return }
        schedule(atMs: loop.nowMs + lingerMs)
    }

    /// No request after this point is handled; input is read and dropped.
    private func stopReading() {
        stopParsing = true
        if let p = parser { http_parser_pause(p, 1) }
    }

    // MARK: reading

    private func received(_ bytes: UnsafeRawBufferPointer) {
        lastReadMs = loop.nowMs
        // Streams, closing sockets and connections past an error ignore further input.
        guard state == .http, !stopParsing, let p = parser else { return }
        var from = 0
        if reader.state == .betweenRequests {
            from = readPlainRequests(bytes)
            guard from < bytes.count, state == .http, !stopParsing, parser != nil else { return }
        }
        let rest = bytes.count - from
        let n = http_parser_execute(p, parserSettings, (bytes.baseAddress! + from).assumingMemoryBound(to: CChar.self), rest)
        let err = ParserFacts.errno(p)
        if err == HPE_PAUSED { return }  // reading stopped (a stream, a close, a drain)
        if let failure {
            self.failure = nil
            fail(failure)
        } else if err != HPE_OK {
            fail(HTTPError(400, "bad_request", "malformed HTTP request: \(ParserFacts.errorText(p))"))
        } else if n != rest, p.pointee.upgrade == 1 {
            fail(HTTPError(400, "bad_request", "protocol upgrades are not supported"))
        }
    }

    /// Reads the plain requests at the start of `bytes` (PlainRequest) through the same
    /// steps http_parser's callbacks take; returns where http_parser takes over.
    private func readPlainRequests(_ bytes: UnsafeRawBufferPointer) -> Int {
        var at = 0
        while at < bytes.count, let r = PlainRequest.scan(bytes, from: at, limits: limits) {
            // The handler's fast lane first (the publish of one event): no Request made.
            if let handler, handler.takePlain(r.bytes(in: bytes), on: self) {
                precondition(handled == reader.begun, "a plain request taken is accepted (acceptPlain)")
                at = r.body.upperBound
                guard state == .http, !stopParsing else { return bytes.count }
                continue
            }
            _ = parserMessageBegin()
            var refused = verdict(reader.appendPlainHead(url: UnsafeRawBufferPointer(rebasing: bytes[r.url]),
                                                         lines: UnsafeRawBufferPointer(rebasing: bytes[r.headers]))) != 0
            refused = refused || headersComplete(method: r.method, keepAlive: true, contentLength: UInt64(r.contentLength)) != 0
            if !refused, !r.body.isEmpty { refused = parserBody(UnsafeRawBufferPointer(rebasing: bytes[r.body])) != 0 }
            if refused {
                let error = failure ?? HTTPError(400, "bad_request", "malformed HTTP request")
                failure = nil
                fail(error)
                return bytes.count
            }
            _ = parserMessageComplete()
            at = r.body.upperBound
            guard state == .http, !stopParsing else { return bytes.count }
        }
        return at
    }

    /// The head timeout passed: answer 408 and close.
    func timedOut(_ error: HTTPError) { fail(error) }

    /// Answers a protocol-level error in turn and closes the connection after it.
    private func fail(_ error: HTTPError) {
        guard state == .http, parser != nil else { return }
        stopParsing = true
        let seq = reader.sequenceForError()
        handled = max(handled, seq + 1)
        answer(seq: seq, bytes: error.response.serialized(close: true), close: true)
    }

    /// A parser callback's answer: 0 to go on, or non-zero to stop with `error` kept for
    /// `received` to answer.
    private func verdict(_ error: HTTPError?) -> Int32 {
        guard let error else { return 0 }
        failure = error
        return 1
    }

    func parserMessageBegin() -> Int32 {
        let now = loop.nowMs
        reader.beginHead(nowMs: now)
        if now + limits.headTimeoutMs < scheduledMs { schedule(atMs: now + limits.headTimeoutMs) }
        return 0
    }

    func parserURL(_ b: UnsafeRawBufferPointer) -> Int32 { verdict(reader.appendURL(b)) }
    func parserHeaderField(_ b: UnsafeRawBufferPointer) -> Int32 { verdict(reader.appendHeaderField(b)) }
    func parserHeaderValue(_ b: UnsafeRawBufferPointer) -> Int32 { verdict(reader.appendHeaderValue(b)) }

    func parserHeadersComplete() -> Int32 {
        guard let p = parser else { return -1 }
        return headersComplete(method: ParserFacts.method(p), keepAlive: ParserFacts.keepAlive(p),
                               contentLength: ParserFacts.contentLength(p))
    }

    /// The head is read (`contentLength` UInt64.max: none given). On http_parser's
    /// callback 1 and 2 would mean "no body"; -1 is the error.
    private func headersComplete(method: String, keepAlive: Bool, contentLength length: UInt64) -> Int32 {
        guard let request = reader.completeHead(method: method, keepAlive: keepAlive) else { return -1 }
        currentBodyStream = handler?.bodyStream(for: request, on: self)
        if currentBodyStream == nil, length != UInt64.max, length > UInt64(limits.maxBodyBytes) {
            failure = HTTPError(413, "body_too_large", "the request body is over \(limits.maxBodyBytes) bytes")
            return -1
        }
        // curl and others wait for this before sending a body (a second, otherwise).
        if request.sequence == answers.nextToSend, request.header("expect")?.lowercased() == "100-continue" {
            sealAnswers()
            queue.pushUnbounded(.init(Connection.continueBytes))
            loop.markDirty(self)
        }
        return 0
    }

    static let continueBytes = SharedBytes("HTTP/1.1 100 Continue\r\n\r\n")

    func parserBody(_ b: UnsafeRawBufferPointer) -> Int32 {
        guard let r = reader.request else { return 1 }
        if let stream = currentBodyStream {
            stream.receive(b)
            return 0
        }
        if r.body.count + b.count > limits.maxBodyBytes {
            failure = HTTPError(413, "body_too_large", "the request body is over \(limits.maxBodyBytes) bytes")
            return 1
        }
        r.body.append(contentsOf: b.bindMemory(to: UInt8.self))
        return 0
    }

    func parserMessageComplete() -> Int32 {
        guard reader.state == .body else { return 1 }
        var r = reader.completeMessage()
        noteHandled(r.sequence)
        // Nothing is read after a `Connection: close` request or during a drain; set before
        // the handler runs, so an answer it gives at once already carries the close.
        if !r.keepAlive || draining { stopReading() }
        if let stream = currentBodyStream {
            currentBodyStream = nil
            stream.end()
        } else {
            handler?.handle(r, on: self)
        }
        // A stream reads no more requests; pausing makes http_parser_execute return at once.
        if state == .streaming { stopReading() }
        // Answered already and held by no one (the memory engine's publish): its buffers
        // serve the next request.
        else if isKnownUniquelyReferenced(&r) { reader.recycle(r) }
        return 0
    }

    /// Request `seq` is complete and goes to the handler: the keep-alive idle timeout
    /// runs from now.
    private func noteHandled(_ seq: UInt64) {
        // An earlier request unanswered, or answered but its answer not yet written (the
        // memory engine answers at once; the write leaves at the turn's end): the client sent
        // this one without waiting.
        if seq > answers.nextToSend || !answerBuffer.isEmpty { pipelines = true }
        // A paced loop (`--turn-pace`) does not sleep after answering a client that waits on
        // us (the answer may come a turn later, from Redis). Within a pace and 2 ms: a request
        // that arrived while the loop slept after the previous answer is seen only after it.
        let paceMs = loop.loop.paceMs
        answerExpedites = paceMs > 0 && waitsOnAnswers(withinMs: paceMs + 2)
        servedRequests += 1
        handled = seq + 1
        let idleDue = loop.nowMs + limits.idleTimeoutMs
        if idleDue < scheduledMs { schedule(atMs: idleDue) }
    }

    /// Takes the plain request offered to `HTTPHandler.takePlain`: it is handled now, and
    /// its answer (`respond(sequence:…)`, `respondOK(sequence:json:)`) has this sequence.
    public func acceptPlain() -> UInt64 {
        let seq = reader.skipPlain()
        noteHandled(seq)
        return seq
    }

    // MARK: answering

    /// Sends `response` as the answer to `request`, after the answers to earlier requests.
    public func respond(to request: Request, _ response: Response, close forceClose: Bool = false) {
        respond(sequence: request.sequence, keepAlive: request.keepAlive, response, close: forceClose)
    }

    /// `respond` to a plain request taken whole (`acceptPlain`; plain requests keep alive).
    public func respond(sequence: UInt64, keepAlive: Bool = true, _ response: Response, close forceClose: Bool = false) {
        let close = forceClose || closes(sequence: sequence, keepAlive: keepAlive)
        guard isOpen else { return }
        guard answers.isDue(sequence) else {
            // Answered ahead of an earlier request (an asynchronous store): held, as bytes.
            return answer(seq: sequence, bytes: response.serialized(close: close), close: close)
        }
        // Due now: serialized straight into the batch's buffer, then any held answers
        // this one was holding up.
        if !closeAfterFlush {
            response.serialize(into: &answerBuffer, close: close)
            answerQueued(close: close)
        }
        answers.sentDue(sequence) { bytes, close in enqueueAnswer(bytes, close: close) }
    }

    /// `respond` for a `200 OK` JSON answer given as bytes (the publish answer): written
    /// straight into the batch's buffer when due, with no Response or array made for it.
    public func respondOK(to request: Request, json body: UnsafeRawBufferPointer) {
        respondOK(sequence: request.sequence, keepAlive: request.keepAlive, json: body)
    }

    /// `respondOK` to a plain request taken whole (`acceptPlain`).
    public func respondOK(sequence: UInt64, keepAlive: Bool = true, json body: UnsafeRawBufferPointer) {
        guard isOpen, answers.isDue(sequence) else {
            return respond(sequence: sequence, keepAlive: keepAlive, .json(200, bytes: Array(body)))
        }
        let close = closes(sequence: sequence, keepAlive: keepAlive)
        if !closeAfterFlush {
            Response.appendJSON200(body, close: close, to: &answerBuffer)
            answerQueued(close: close)
        }
        answers.sentDue(sequence) { bytes, close in enqueueAnswer(bytes, close: close) }
    }

    /// Whether the answer to request `sequence` is the connection's last: the client asked
    /// for `close`, or it is the last request handled before a drain.
    private func closes(sequence: UInt64, keepAlive: Bool) -> Bool {
        !keepAlive || (draining && stopParsing && sequence + 1 == handled)
    }

    private func answer(seq: UInt64, bytes: [UInt8], close: Bool) {
        guard isOpen else { return }
        answers.put(seq, bytes: bytes, close: close) { bytes, close in enqueueAnswer(bytes, close: close) }
    }

    private func enqueueAnswer(_ bytes: [UInt8], close: Bool) {
        guard !closeAfterFlush else { return }
        answerBuffer.append(contentsOf: bytes)
        answerQueued(close: close)
    }

    /// Whether the client sends each request only once the previous answer is written (never
    /// otherwise so far) and sent this one within `ms` of that answer: it waits
    /// on us, and holding its request (`--redis-pace`, `--turn-pace`) would hold the client too.
    public func waitsOnAnswers(withinMs ms: UInt64) -> Bool {
        !pipelines && lastAnswerMs > 0 && loop.nowMs &- lastAnswerMs <= ms
    }

    /// An answer went into `answerBuffer`.
    private func answerQueued(close: Bool) {
        lastAnswerMs = loop.nowMs
        if answerExpedites {
            answerExpedites = false
            loop.loop.expediteTurn()
        }
        if close {
            closeAfterFlush = true
            stopParsing = true  // nothing after this answer will be read or answered
            currentBodyStream = nil
        }
        loop.markDirty(self)
    }

    // MARK: streaming

    /// Queues the answers serialized so far as one buffer, ahead of whatever is queued next.
    func sealAnswers() {
        guard !answerBuffer.isEmpty else { return }
        queue.pushUnbounded(.init(SharedBytes(answerBuffer[...])))
        // Kept for the next batch, unless a large answer (a page, the metrics) grew it.
        if answerBuffer.capacity > 64 * 1024 { answerBuffer = [] } else { answerBuffer.removeAll(keepingCapacity: true) }
    }

    /// Turns this connection into a long-lived stream answering `request`: sends the head
    /// and `opening` bytes, bounds the queue at `capacity`, and sends `heartbeat` after
    /// `heartbeatMs` without a write.
    public func startStream(to request: Request, head: Response, opening: SharedBytes, capacity: Int,
                            heartbeat: SharedBytes, heartbeatMs: UInt64, delegate: StreamDelegate) {
        guard state == .http else { return }
        state = .streaming
        streamDelegate = delegate
        reader.releaseBuffers()
        answer(seq: request.sequence, bytes: head.serialized(close: true, stream: true), close: false)
        sealAnswers()
        answerBuffer = []  // a stream answers nothing more: no batch buffer kept (idle memory)
        queue.pushUnbounded(.init(opening))
        queue.capacity = capacity
        self.heartbeat = heartbeat
        self.heartbeatMs = max(100, heartbeatMs)
        schedule(atMs: loop.nowMs + self.heartbeatMs)
    }

    /// Queues shared bytes on a stream. `.overflow` means the client is too slow: the
    /// caller decides (the broker disconnects it). `token` marks a mergeable token event.
    public func send(_ bytes: SharedBytes, conflate: String? = nil, token: OutboundQueue.Token? = nil) -> OutboundQueue.PushResult {
        guard state == .streaming, !closeAfterFlush else { return .queued }
        sealAnswers()  // a head held behind an earlier answer goes out before the events
        queue.pushUnbounded(.init(bytes, conflate: conflate, token: token))
        loop.markDirty(self)
        guard queue.totalBytes > queue.capacity else { return .queued }
        // Over the bound: first let the kernel take what it can (a big batch can arrive
        // between two loop turns), then merge token runs and drop superseded snapshots,
        // and only then give up.
        flush(notify: false)
        return isOpen ? queue.relieve() : .queued
    }

    /// Merges the runs of queued token events (before a shed at the global cap); returns how
    /// many events were folded into others.
    public func mergeQueuedTokens() -> Int { state == .streaming ? queue.mergeTokens() : 0 }

    /// The queue is written out: close if that was the last answer, or tell a stream.
    func drained() {
        guard queue.isIdle else { return }
        if closeAfterFlush {
            shutdownGracefully()
            return
        }
        if state == .streaming, wantsRoom { streamDelegate?.streamHasRoom(self) }
    }

    /// For the timers: no request in progress and every request answered.
    var isBetweenRequests: Bool { reader.state == .betweenRequests && answers.answeredAll(reader.begun) }
}
