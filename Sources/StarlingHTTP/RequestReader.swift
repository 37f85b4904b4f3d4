// RequestReader: what http_parser has told us of the request being read on one
// connection, as a value with a state: between requests, reading a head, reading a body.
// It gathers the target and headers within the limits of SPEC §7 and makes the Request
// when the head is complete. No I/O here: the Connection feeds it from the parser's
// callbacks and decides what an error or a finished request means for the socket.

struct RequestReader {
    enum State: Equatable {
        /// No request in progress: the next byte starts one.
        case betweenRequests
        /// A head is arriving (since `headBeganMs`).
        case head
        /// The head is complete and `request` was made; its body (if any) is arriving.
        case body
    }

    let limits: HTTPLimits
    private(set) var state = State.betweenRequests
    /// Requests begun on this connection; a request's sequence is its position.
    private(set) var begun: UInt64 = 0
    /// Loop time the current head began (for the head timeout); nil unless reading a head.
    private(set) var headBeganMs: UInt64?
    /// The request whose body is arriving (state `.body`).
    private(set) var request: Request?

    /// The head as read, without the syntax: the URL, then each header's lowercased name
    /// and value back to back. The Request takes it whole; no String is made per header.
    private var head: [UInt8] = []
    private var urlCount = 0
    /// Per header, four offsets into `head`: name start and end, value start and end.
    private var spans: [UInt32] = []
    /// Where the header being read begins, and its value (once a value byte arrived).
    private var fieldStart = 0
    private var valueStart = 0
    private var inHeader = false
    private var lastWasValue = false
    private var headBytes = 0

    init(limits: HTTPLimits) { self.limits = limits }

    mutating func beginHead(nowMs: UInt64) {
        precondition(state == .betweenRequests, "a request begins only between requests")
        // The last Request took the buffers, unless it gave them back (`recycle`): then
        // they are empty and keep their room. Else fresh ones, sized for a usual head;
        // room for 8 headers is one allocation, where growing from empty took three.
        if head.capacity == 0 { head.reserveCapacity(256) }
        if spans.capacity == 0 { spans.reserveCapacity(32) }
        urlCount = 0
        inHeader = false
        lastWasValue = false
        headBytes = 0
        begun += 1
        headBeganMs = nowMs
        state = .head
    }

    mutating func appendURL(_ b: UnsafeRawBufferPointer) -> HTTPError? {
        precondition(state == .head && !inHeader, "the URL comes before the headers")
        head.append(contentsOf: b.bindMemory(to: UInt8.self))
        urlCount += b.count
        headBytes += b.count
        if urlCount > limits.maxURLBytes {
            return HTTPError(414, "url_too_long", "the request URL is over \(limits.maxURLBytes) bytes")
        }
        return nil
    }

    mutating func appendHeaderField(_ b: UnsafeRawBufferPointer) -> HTTPError? {
        // A chunked body may end with trailer fields (RFC 9112 §7.1.2): http_parser reports
        // them like headers, after the head. Nothing here reads them: dropped. (http_parser
        // bounds their size as it bounds a head's.)
        if state == .body { return nil }
        precondition(state == .head, "header fields come in a head (or a chunked body's trailer)")
        if lastWasValue { commitHeader() }
        if !inHeader {
            inHeader = true
            fieldStart = head.count
        }
        head.append(contentsOf: b.bindMemory(to: UInt8.self))
        return countHead(b.count)
    }

    mutating func appendHeaderValue(_ b: UnsafeRawBufferPointer) -> HTTPError? {
        if state == .body { return nil }  // a trailer field's value (above)
        precondition(state == .head && inHeader, "a header value follows its name")
        if !lastWasValue { valueStart = head.count }
        lastWasValue = true
        head.append(contentsOf: b.bindMemory(to: UInt8.self))
        return countHead(b.count)
    }

    /// The head of a plain request (PlainRequest checked its shape): the URL, then the
    /// header lines as sent, `lines` ending with the last line's CRLF (empty: no header).
    /// Two appends where the parser's callbacks make one per name and value; names are
    /// lowercased in place and the spans skip the `:`, blanks and CRLFs, so lookups and
    /// `headers` read what the callbacks would have gathered (RequestReaderTests).
    mutating func appendPlainHead(url: UnsafeRawBufferPointer, lines: UnsafeRawBufferPointer) -> HTTPError? {
        precondition(state == .head && !inHeader && urlCount == 0, "a plain head is read whole")
        if let error = appendURL(url) { return error }
        guard !lines.isEmpty else { return nil }
        let start = head.count
        head.append(contentsOf: lines.bindMemory(to: UInt8.self))
        var counted = 0
        head.withUnsafeMutableBufferPointer { h in
            var i = start
            while i < h.count {
                let nameStart = i
                while h[i] != 0x3A {
                    if h[i] >= 0x41 && h[i] <= 0x5A { h[i] |= 0x20 }
                    i += 1
                }
                let nameEnd = i
                i += 1
                while h[i] == 0x20 || h[i] == 0x09 { i += 1 }
                let valueStart = i
                while h[i] != 0x0D { i += 1 }
                spans.append(UInt32(nameStart)); spans.append(UInt32(nameEnd))
                spans.append(UInt32(valueStart)); spans.append(UInt32(i))
                counted += nameEnd - nameStart + i - valueStart
                i += 2
            }
        }
        return countHead(counted)
    }

    private mutating func countHead(_ n: Int) -> HTTPError? {
        headBytes += n
        if headBytes > limits.maxHeadBytes {
            return HTTPError(431, "head_too_large", "the request head is over \(limits.maxHeadBytes) bytes")
        }
        return nil
    }

    private mutating func commitHeader() {
        if !lastWasValue { valueStart = head.count }  // a name with no value byte
        // Lowercase the ASCII name in place: lookups compare bytes.
        head.withUnsafeMutableBufferPointer { h in
            for k in fieldStart..<valueStart where h[k] >= 0x41 && h[k] <= 0x5A { h[k] |= 0x20 }
        }
        spans.append(UInt32(fieldStart))
        spans.append(UInt32(valueStart))
        spans.append(UInt32(valueStart))
        spans.append(UInt32(head.count))
        inHeader = false
        lastWasValue = false
    }

    /// The head is complete: makes the request (nil if the head broke a limit).
    mutating func completeHead(method: String, keepAlive: Bool) -> Request? {
        precondition(state == .head, "a head completes once, after it began")
        if inHeader { commitHeader() }
        if urlCount > limits.maxURLBytes || headBytes > limits.maxHeadBytes { return nil }
        let r = Request(method: method, head: RequestHead(bytes: head, urlCount: urlCount, spans: spans),
                        keepAlive: keepAlive, sequence: begun - 1)
        head = []
        spans = []
        if spareBody.capacity > 0 { swap(&r.body, &spareBody) }
        request = r
        headBeganMs = nil
        state = .body
        return r
    }

    /// A plain request the handler took whole (`Connection.acceptPlain`): counted, with
    /// nothing gathered; returns its sequence.
    mutating func skipPlain() -> UInt64 {
        precondition(state == .betweenRequests, "a plain request is taken between requests")
        begun += 1
        return begun - 1
    }

    /// The current request's body is complete; returns the request.
    mutating func completeMessage() -> Request {
        precondition(state == .body, "a message completes after its head")
        let r = request!
        request = nil
        state = .betweenRequests
        return r
    }

    /// The sequence an error answer takes: the request in progress, or a new one.
    mutating func sequenceForError() -> UInt64 {
        switch state {
        case .body: return request!.sequence
        case .head: return begun - 1
        case .betweenRequests:
            begun += 1
            return begun - 1
        }
    }

    /// A request answered and held by no one else gives its buffers to the next one: a
    /// publisher's keep-alive connection then reads request after request with no
    /// allocation for them. Buffers grown past a usual request's size are let go (a
    /// connection keeps no 4 MB body's room for its life).
    mutating func recycle(_ r: Request) {
        guard state == .betweenRequests else { return }
        let (h, s, b) = r.takeBuffers()
        if head.capacity == 0, h.capacity <= Self.keptHeadBytes { head = h }
        if spans.capacity == 0, s.capacity <= 128 { spans = s }
        if spareBody.capacity == 0, b.capacity <= Self.keptBodyBytes { spareBody = b }
    }

    static let keptHeadBytes = 4096
    static let keptBodyBytes = 16384

    /// An empty body buffer kept from a recycled request, for the next one.
    private var spareBody: [UInt8] = []

    /// A stream reads no more requests: give back the parse buffers (idle memory).
    mutating func releaseBuffers() {
        head = []; spans = []; spareBody = []
    }
}
