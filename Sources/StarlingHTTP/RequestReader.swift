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

    private var url: [UInt8] = []
    private var headers: [(String, String)] = []
    private var field: [UInt8] = []
    private var value: [UInt8] = []
    private var lastWasValue = false
    private var headBytes = 0

    init(limits: HTTPLimits) { self.limits = limits }

    mutating func beginHead(nowMs: UInt64) {
        precondition(state == .betweenRequests, "a request begins only between requests")
        url.removeAll(keepingCapacity: true)
        headers.removeAll()
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        lastWasValue = false
        headBytes = 0
        begun += 1
        headBeganMs = nowMs
        state = .head
    }

    mutating func appendURL(_ b: UnsafeRawBufferPointer) -> HTTPError? {
        precondition(state == .head)
        url.append(contentsOf: b)
        headBytes += b.count
        if url.count > limits.maxURLBytes {
            return HTTPError(414, "url_too_long", "the request URL is over \(limits.maxURLBytes) bytes")
        }
        return nil
    }

    mutating func appendHeaderField(_ b: UnsafeRawBufferPointer) -> HTTPError? {
        precondition(state == .head)
        if lastWasValue { commitHeader() }
        field.append(contentsOf: b)
        return countHead(b.count)
    }

    mutating func appendHeaderValue(_ b: UnsafeRawBufferPointer) -> HTTPError? {
        precondition(state == .head)
        lastWasValue = true
        value.append(contentsOf: b)
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
        // Lowercase the ASCII name in place: no second String per header.
        for k in field.indices where field[k] >= 0x41 && field[k] <= 0x5A { field[k] |= 0x20 }
        headers.append((String(decoding: field, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        lastWasValue = false
    }

    /// The head is complete: makes the request (nil if the head broke a limit).
    mutating func completeHead(method: String, keepAlive: Bool) -> Request? {
        precondition(state == .head, "a head completes once, after it began")
        if lastWasValue || !field.isEmpty { commitHeader() }
        if url.count > limits.maxURLBytes || headBytes > limits.maxHeadBytes { return nil }
        let r = Request(method: method, target: String(decoding: url, as: UTF8.self),
                        headers: headers, keepAlive: keepAlive, sequence: begun - 1)
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
        url = []; field = []; value = []; headers = []
    }
}
