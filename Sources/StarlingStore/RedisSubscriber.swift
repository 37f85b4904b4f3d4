// RedisSubscriber: the sharded pub/sub connection (SSUBSCRIBE / SUNSUBSCRIBE, `smessage`
// pushes). Debian's hiredis 0.14 async API knows only SUBSCRIBE-style replies (an
// `smessage` arriving with no callback queued trips its assert), so this connection is the
// project's own libuv TCP socket with hiredis's RESP reader (redisReaderFeed/GetReply) on
// the bytes, with our own object functions: the values of a reply are recorded flat into
// one reused buffer (FlatReply) instead of hiredis's tree of malloc'd objects (8 mallocs
// and frees per notification, every one a node delivers). Every C callback and pointer of
// it lives in this file; above it, a message is its channel and payload, any other reply
// (confirmation, or an error answering a command, in order) a RedisReply.
//
// Like RedisConnection it reconnects by itself with backoff and jitter; the owner hears of
// each connect and loss and re-sends its subscriptions. `stop` ends it for good.
import CHiredis
import CLibUV
import StarlingLoop
#if canImport(Glibc)
import Glibc
#endif

final class RedisSubscriber {
    let role: String
    let url: RedisURL
    private let loop: EventLoop
    private var tcp: UnsafeMutablePointer<uv_tcp_t>?
    private var reader: UnsafeMutablePointer<redisReader>?
    /// The reply being read, recorded by `replyFunctions` (the reader's privdata).
    private let flat = FlatReply()
    private let replyFunctions = FlatReply.functions()
    private let readBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: RedisSubscriber.readBufferSize)
    private var retry: LoopTimer?
    private var connectDeadline: LoopTimer?
    private var backoff = RedisBackoff()
    private var started = false
    private var stopped = false
    private var awaitingAuth = false
    /// True once the socket is connected and AUTH (if any) accepted; sends are refused outside it.
    private(set) var isConnected = false

    var onConnect: (() -> Void)?
    /// The connection dropped (true) or an attempt failed (false); a reconnect is scheduled.
    var onDisconnect: ((String, Bool) -> Void)?
    /// Every reply after the handshake but messages: pushes (`ssubscribe`, `sunsubscribe`)
    /// and error replies, which answer the oldest command not yet answered.
    var onReply: ((RedisReply) -> Void)?
    /// A message (`smessage`, or `message`) on one of our streams: its channel and payload
    /// (a slice of the reader's buffer, valid during the call: not copied).
    /// Read straight from hiredis's reply, not copied into a RedisReply first: every
    /// notification passes here (an array and three bulk strings less per message).
    var onMessage: ((String, ArraySlice<UInt8>) -> Void)?
    var onHandshakeError: ((String) -> Void)?

    static let readBufferSize = 64 * 1024

    init(loop: EventLoop, url: RedisURL, role: String) {
        self.loop = loop
        self.url = url
        self.role = role
    }

    deinit {
        readBuffer.deallocate()
        if let reader { redisReaderFree(reader) }
        replyFunctions.deallocate()
    }

    func start() {
        guard !started else { return }
        started = true
        connect()
    }

    /// Closes the connection and stops reconnecting (a node that left the cluster).
    func stop() {
        stopped = true
        retry?.cancel()
        connectDeadline?.cancel()
        isConnected = false
        closeSocket()
    }

    /// Writes one command; false when not connected.
    @discardableResult
    func send(_ command: RedisCommand) -> Bool {
        guard isConnected else { return false }
        return write(command)
    }

    // MARK: connection life

    private func connect() {
        guard tcp == nil, !stopped else { return }
        guard var address = Self.resolve(url.host, url.port) else { return scheduleReconnect("cannot resolve \(url.host)", dropped: false) }
        let handle = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        uv_tcp_init(loop.uv, handle)
        // The handle holds the object until its close callback, so late callbacks find it.
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        tcp = handle
        if let reader { redisReaderFree(reader) }
        flat.reset()
        reader = redisReaderCreateWithFunctions(replyFunctions)
        reader?.pointee.privdata = Unmanaged.passUnretained(flat).toOpaque()
        let request = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_connect(request, handle, $0, subscriberConnected) }
        }
        if r != 0 {
            request.deallocate()
            return drop("connect: \(String(cString: uv_strerror(r)))")
        }
        connectDeadline?.cancel()
        connectDeadline = loop.after(ms: RedisConnection.connectTimeoutMs) { [weak self] in
            guard let self, self.tcp == handle, !self.isConnected else { return }
            self.drop("connect timed out")
        }
    }

    fileprivate func connected(_ handle: UnsafeMutablePointer<uv_tcp_t>, status: Int32) {
        guard tcp == handle else { return }
        connectDeadline?.cancel()
        guard status == 0 else { return drop(String(cString: uv_strerror(status))) }
        uv_tcp_nodelay(handle, 1)
        uv_tcp_keepalive(handle, 1, 30)
        let stream = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_stream_t.self)
        uv_read_start(stream, subscriberAlloc, subscriberRead)
        if let password = url.password {
            awaitingAuth = true
            _ = write(RedisCommand(["AUTH"] + (url.username.map { [$0] } ?? []) + [password]))
        } else {
            ready()
        }
    }

    private func ready() {
        isConnected = true
        backoff.reset()
        onConnect?()
    }

    fileprivate func buffer() -> uv_buf_t { uv_buf_init(readBuffer, UInt32(Self.readBufferSize)) }

    fileprivate func read(_ handle: UnsafeMutablePointer<uv_tcp_t>, _ count: Int) {
        guard tcp == handle, let reader else { return }
        if count < 0 { return drop(count == Int(UV_EOF.rawValue) ? "connection closed" : String(cString: uv_strerror(Int32(count)))) }
        guard count > 0 else { return }
        // Fed in slices, each read to its end before the next: hiredis's reader appends what
        // it is fed to its buffer and, once it has read 1 KB of it, moves the unread rest to
        // the front; fed a whole 64 KB read of notifications it moved tens of KB for every KB
        // read (`sdsrange`: ~800 instructions per notification, callgrind, S2a).
        var fed = 0
        while fed < count, tcp == handle {
            let n = min(Self.feedSlice, count - fed)
            guard redisReaderFeed(reader, readBuffer + fed, n) == REDIS_OK else { return drop("unreadable reply") }
            fed += n
            handleReplies(reader, handle)
        }
    }

    /// Handles every whole reply the reader holds, until it needs more bytes or the
    /// connection was dropped or replaced meanwhile.
    private func handleReplies(_ reader: UnsafeMutablePointer<redisReader>, _ handle: UnsafeMutablePointer<uv_tcp_t>) {
        while tcp == handle {
            var raw: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &raw) == REDIS_OK else { return drop("unreadable reply") }
            // Not nil: one whole reply is in `flat` (the token is the FlatReply itself).
            guard raw != nil else { return }
            if !awaitingAuth, let onMessage, let (channel, payload) = flat.message() {
                if let channel { onMessage(channel, payload) }
                flat.reset()  // after: the payload is a slice of its buffer
                continue
            }
            let reply = flat.reply()
            flat.reset()
            replied(reply)
        }
    }

    /// Bytes handed to the reader at a time (see `read`).
    static let feedSlice = 2048

    private func replied(_ reply: RedisReply) {
        guard awaitingAuth else { onReply?(reply); return }
        awaitingAuth = false
        if let message = reply.errorMessage {
            onHandshakeError?(message)
            return drop("AUTH refused")
        }
        ready()
    }

    /// Closes the socket and schedules the next attempt.
    private func drop(_ reason: String) {
        let dropped = isConnected
        isConnected = false
        awaitingAuth = false
        connectDeadline?.cancel()
        closeSocket()
        guard !stopped else { return }
        scheduleReconnect(reason, dropped: dropped)
    }

    private func closeSocket() {
        guard let handle = tcp else { return }
        tcp = nil
        uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { h in
            guard let h else { return }
            if let data = h.pointee.data { Unmanaged<RedisSubscriber>.fromOpaque(data).release() }
            h.deallocate()
        }
    }

    private func scheduleReconnect(_ reason: String, dropped: Bool) {
        let delay = backoff.next()
        retry?.cancel()
        retry = loop.after(ms: delay) { [weak self] in self?.connect() }
        onDisconnect?("\(reason) (reconnecting in \(delay) ms)", dropped)
    }

    private func write(_ command: RedisCommand) -> Bool {
        guard let handle = tcp else { return false }
        let count = command.withEncoded { $0.count }
        let base = UnsafeMutablePointer<CChar>.allocate(capacity: count)
        command.withEncoded { UnsafeMutableRawPointer(base).copyMemory(from: $0.baseAddress!, byteCount: count) }
        let request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        request.pointee.data = UnsafeMutableRawPointer(base)
        var buf = uv_buf_init(base, UInt32(count))
        let stream = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_stream_t.self)
        // libuv copies the buf array, not the bytes: they are freed in the callback.
        let r = uv_write(request, stream, &buf, 1) { req, _ in
            guard let req else { return }
            req.pointee.data?.assumingMemoryBound(to: CChar.self).deallocate()
            req.deallocate()
        }
        if r != 0 {
            base.deallocate()
            request.deallocate()
            return false  // the read side reports the broken socket
        }
        return true
    }

    /// An IPv4 or IPv6 literal, else the first address the resolver gives (a blocking
    /// look-up, done only when (re)connecting to a node named by host name).
    private static func resolve(_ host: String, _ port: Int) -> sockaddr_storage? {
        var storage = sockaddr_storage()
        let ok = withUnsafeMutablePointer(to: &storage) { p -> Bool in
            if p.withMemoryRebound(to: sockaddr_in.self, capacity: 1, { uv_ip4_addr(host, Int32(port), $0) }) == 0 { return true }
            return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1, { uv_ip6_addr(host, Int32(port), $0) }) == 0
        }
        if ok { return storage }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result, let addr = first.pointee.ai_addr else { return nil }
        defer { freeaddrinfo(result) }
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: addr, count: Int(first.pointee.ai_addrlen))) }
        return storage
    }

    fileprivate static func from(_ handle: UnsafeMutableRawPointer?) -> RedisSubscriber? {
        guard let data = handle?.assumingMemoryBound(to: uv_handle_t.self).pointee.data else { return nil }
        return Unmanaged<RedisSubscriber>.fromOpaque(data).takeUnretainedValue()
    }
}

// MARK: C callbacks (no captures: they find the Swift object through the handle's data)

private let subscriberConnected: @convention(c) (UnsafeMutablePointer<uv_connect_t>?, Int32) -> Void = { request, status in
    guard let request else { return }
    let handle = UnsafeMutableRawPointer(request.pointee.handle)
    request.deallocate()
    guard let handle else { return }
    RedisSubscriber.from(handle)?.connected(handle.assumingMemoryBound(to: uv_tcp_t.self), status: status)
}

private let subscriberAlloc: @convention(c) (UnsafeMutablePointer<uv_handle_t>?, Int, UnsafeMutablePointer<uv_buf_t>?) -> Void = { handle, _, buf in
    guard let buf else { return }
    if let s = RedisSubscriber.from(UnsafeMutableRawPointer(handle)) { buf.pointee = s.buffer() } else { buf.pointee = uv_buf_init(nil, 0) }
}

private let subscriberRead: @convention(c) (UnsafeMutablePointer<uv_stream_t>?, Int, UnsafePointer<uv_buf_t>?) -> Void = { stream, count, _ in
    guard let stream else { return }
    let raw = UnsafeMutableRawPointer(stream)
    RedisSubscriber.from(raw)?.read(raw.assumingMemoryBound(to: uv_tcp_t.self), count)
}

/// One reply as hiredis's reader parses it, flat: its values in stream order (an array
/// before its elements, which is pre-order) with the bytes of its strings back to back.
/// Reused from reply to reply, so reading one allocates nothing once the buffers have grown.
final class FlatReply {
    struct Value {
        var type: Int32
        var start = 0, end = 0
        var integer: Int64 = 0
        var elements = 0
    }

    private var values: [Value] = []
    private var bytes: [UInt8] = []

    func reset() {
        values.removeAll(keepingCapacity: true)
        bytes.removeAll(keepingCapacity: true)
    }

    /// A `[smessage|message, <name>, <payload>]` push: the channel (nil when the name is not
    /// one of our streams) and the payload; nil for any other reply.
    func message() -> (String?, ArraySlice<UInt8>)? {
        guard values.count == 4, values[0].type == REDIS_REPLY_ARRAY, values[0].elements == 3,
              values[1].type == REDIS_REPLY_STRING, values[2].type == REDIS_REPLY_STRING,
              values[3].type == REDIS_REPLY_STRING else { return nil }
        let kind = bytes[values[1].start..<values[1].end]
        guard Self.equal(kind, "smessage") || Self.equal(kind, "message") else { return nil }
        return (RedisKeys.channel(fromStream: bytes[values[2].start..<values[2].end]),
                bytes[values[3].start..<values[3].end])
    }

    /// Byte equality without `elementsEqual`, whose generic walk over a String's UTF-8 view
    /// cost ~400 instructions per notification.
    private static func equal(_ b: ArraySlice<UInt8>, _ s: StaticString) -> Bool {
        b.count == s.utf8CodeUnitCount && b.withUnsafeBufferPointer { memcmp($0.baseAddress!, s.utf8Start, b.count) == 0 }
    }

    /// The reply as a RedisReply (confirmations, errors: not every message).
    func reply() -> RedisReply {
        var k = 0
        return values.isEmpty ? .null : value(&k)
    }

    private func value(_ k: inout Int) -> RedisReply {
        let v = values[k]
        k += 1
        switch v.type {
        case REDIS_REPLY_STRING: return .bulk(Array(bytes[v.start..<v.end]))
        case REDIS_REPLY_STATUS: return .status(String(decoding: bytes[v.start..<v.end], as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes[v.start..<v.end], as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(v.integer)
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(v.elements)
            for _ in 0..<v.elements where k < values.count { items.append(value(&k)) }
            return .array(items)
        default: return .null
        }
    }

    fileprivate func string(_ type: Int32, _ p: UnsafeMutablePointer<CChar>?, _ length: Int) {
        let start = bytes.count
        if let p, length > 0 {
            bytes.append(contentsOf: UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: length))
        }
        values.append(Value(type: type, start: start, end: bytes.count))
    }

    fileprivate func array(_ elements: Int) { values.append(Value(type: REDIS_REPLY_ARRAY, elements: max(0, elements))) }
    fileprivate func integer(_ n: Int64) { values.append(Value(type: REDIS_REPLY_INTEGER, integer: n)) }
    fileprivate func null() { values.append(Value(type: REDIS_REPLY_NIL)) }

    /// The reader's object functions (hiredis keeps the pointer: one per reader's owner).
    /// Each returns the FlatReply as the value's token: hiredis only needs it non-nil, and
    /// freeObject has nothing to free.
    static func functions() -> UnsafeMutablePointer<redisReplyObjectFunctions> {
        let f = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        f.initialize(to: redisReplyObjectFunctions(
            createString: { task, p, length in
                guard let task, let data = task.pointee.privdata else { return nil }
                Unmanaged<FlatReply>.fromOpaque(data).takeUnretainedValue().string(task.pointee.type, p, length)
                return data
            },
            createArray: { task, elements in
                guard let task, let data = task.pointee.privdata else { return nil }
                Unmanaged<FlatReply>.fromOpaque(data).takeUnretainedValue().array(Int(elements))
                return data
            },
            createInteger: { task, n in
                guard let task, let data = task.pointee.privdata else { return nil }
                Unmanaged<FlatReply>.fromOpaque(data).takeUnretainedValue().integer(Int64(n))
                return data
            },
            createNil: { task in
                guard let task, let data = task.pointee.privdata else { return nil }
                Unmanaged<FlatReply>.fromOpaque(data).takeUnretainedValue().null()
                return data
            },
            freeObject: { _ in }))
        return f
    }
}
