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
    /// Per header, three offsets into `head`: name start, value start, value end.
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
        // The last Request took the buffers: start fresh ones, sized for a usual head.
        head = []
        head.reserveCapacity(256)
        // Room for 8 headers: one allocation, where growing from empty took three.
        spans = []
        spans.reserveCapacity(24)
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
        precondition(state == .head)
        if lastWasValue { commitHeader() }
        if !inHeader {
            inHeader = true
            fieldStart = head.count
        }
        head.append(contentsOf: b.bindMemory(to: UInt8.self))
        return countHead(b.count)
    }

    mutating func appendHeaderValue(_ b: UnsafeRawBufferPointer) -> HTTPError? {
        precondition(state == .head && inHeader, "a header value follows its name")
        if !lastWasValue { valueStart = head.count }
        lastWasValue = true
        head.append(contentsOf: b.bindMemory(to: UInt8.self))
        return countHead(b.count)
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
        request = r
        headBeganMs = nil
        state = .body
        return r
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

    /// A stream reads no more requests: give back the parse buffers (idle memory).
    mutating func releaseBuffers() {
        head = []; spans = []
    }
}
