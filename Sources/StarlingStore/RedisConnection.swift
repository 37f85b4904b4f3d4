// RedisConnection: the thin wrapper over one hiredis async connection driven by the
// broker's own libuv loop (hiredis's libuv adapter). Every C callback, Unmanaged box and
// pointer of the Redis engine lives in this file; above it replies are RedisReply values,
// and a connection that drops answers every command still in flight with nil.
//
// It reconnects by itself with backoff and jitter; the owner hears about each connect
// and each loss, and re-sends whatever state (subscriptions) the new connection needs.
import CHiredis
import StarlingCore
import CLibUV
import StarlingLoop

final class RedisConnection {
    typealias Completion = (RedisReply?) -> Void

    let role: String
    private let loop: EventLoop
    let url: RedisURL
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var retry: LoopTimer?
    private var connectDeadline: LoopTimer?
    private var backoff = RedisBackoff()
    private var started = false
    /// True between the connect callback and the first sign of loss; commands are
    /// refused (send returns false) outside it.
    private(set) var isConnected = false
    /// Set when a nil reply marked the connection down before hiredis reported the loss.
    private var wasUp = false
    /// The socket is connected; the connection is usable once the handshake (AUTH,
    /// SELECT) has been accepted too: a wrong password is a failed connect, not a
    /// connection whose every command fails with NOAUTH.
    private var socketUp = false
    private var handshakeLeft = 0
    private var handshakeFailed = false

    /// The connection is up and its handshake (AUTH, SELECT) accepted.
    var onConnect: (() -> Void)?
    /// The connection dropped (true) or an attempt failed (false); a reconnect is already scheduled.
    var onDisconnect: ((String, Bool) -> Void)?
    /// Pub/sub traffic: subscribe/unsubscribe confirmations and messages.
    var onPush: ((RedisReply) -> Void)?
    /// AUTH or SELECT was refused (a wrong password, an unknown user, a bad db).
    var onHandshakeError: ((String) -> Void)?

    init(loop: EventLoop, url: RedisURL, role: String) {
        self.loop = loop
        self.url = url
        self.role = role
    }

    func start() {
        guard !started else { return }
        started = true
        connect()
    }

    // MARK: commands

    /// Queues one command (pipelined behind the others); `completion` gets its reply, or
    /// nil if the connection drops first. False (and no completion) when not connected.
    @discardableResult
    func send(_ command: RedisCommand, _ completion: Completion? = nil) -> Bool {
        guard isConnected, let ac = context else { return false }
        return enqueue(ac, command, completion)
    }

    @discardableResult
    func send(_ args: [String], _ completion: Completion? = nil) -> Bool {
        send(RedisCommand(args), completion)
    }

    /// SUBSCRIBE/UNSUBSCRIBE: their confirmations and the channel's messages reach `onPush`.
    @discardableResult
    func subscribe(_ channel: String) -> Bool { pubsubCommand(RedisCommand("SUBSCRIBE", channel)) }

    @discardableResult
    func unsubscribe(_ channel: String) -> Bool { pubsubCommand(RedisCommand("UNSUBSCRIBE", channel)) }

    private func pubsubCommand(_ command: RedisCommand) -> Bool {
        guard isConnected, let ac = context else { return false }
        let me = Unmanaged.passUnretained(self).toOpaque()
        return command.withEncoded { b in
            redisAsyncFormattedCommand(ac, redisPushCallback, me, b.baseAddress!.assumingMemoryBound(to: CChar.self), b.count) == REDIS_OK
        }
    }

    /// The command is already RESP (RedisCommand): hiredis's own formatting
    /// (redisAsyncCommandArgv) prints every length through sdscatfmt and grows its string
    /// piece by piece, 4 % of the Redis engine's instructions (callgrind). hiredis copies
    /// the bytes into its output buffer during the call.
    private func enqueue(_ ac: UnsafeMutablePointer<redisAsyncContext>, _ command: RedisCommand, _ completion: Completion?) -> Bool {
        let box = completion.map { Unmanaged.passRetained(ReplyBox($0)).toOpaque() }
        let ok = command.withEncoded { b in
            redisAsyncFormattedCommand(ac, redisReplyCallback, box, b.baseAddress!.assumingMemoryBound(to: CChar.self), b.count) == REDIS_OK
        }
        if !ok, let box { Unmanaged<ReplyBox>.fromOpaque(box).release() }
        if ok { loop.awaitingReplies += 1 }  // hiredis calls back once per command, nil if the connection goes
        return ok
    }

    /// A command's reply (or its nil) came back.
    fileprivate func replied() { loop.awaitingReplies -= 1 }

    // MARK: connection life

    private func connect() {
        guard context == nil else { return }
        guard let ac = redisAsyncConnect(url.host, Int32(url.port)) else { return scheduleReconnect("cannot allocate a context") }
        if ac.pointee.err != 0 {
            let reason = String(cString: ac.pointee.errstr)
            redisAsyncFree(ac)
            return scheduleReconnect(reason)
        }
        ac.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        guard RedisPoll.attach(ac, loop.uv) else {
            redisAsyncFree(ac)
            return scheduleReconnect("cannot attach to the event loop")
        }
        redisAsyncSetConnectCallback(ac, redisConnectCallback)
        redisAsyncSetDisconnectCallback(ac, redisDisconnectCallback)
        context = ac
        // A connect that never completes (a silent host) must not leave us waiting forever.
        connectDeadline?.cancel()
        connectDeadline = loop.after(ms: Self.connectTimeoutMs) { [weak self] in self?.connectTimedOut(ac) }
        // Queued now, written first once the socket connects: before any caller's command.
        // AUTH user password is Redis 6's ACL form; AUTH password, the default user's.
        socketUp = false
        handshakeLeft = 0
        handshakeFailed = false
        let handshake: Completion = { [weak self] reply in self?.handshakeReplied(ac, reply) }
        if let password = url.password {
            handshakeLeft += 1
            _ = enqueue(ac, RedisCommand(["AUTH"] + (url.username.map { [$0] } ?? []) + [password]), handshake)
        }
        if url.db != 0 {
            handshakeLeft += 1
            _ = enqueue(ac, RedisCommand("SELECT", String(url.db)), handshake)
        }
    }

    static let connectTimeoutMs: UInt64 = 3_000

    private func connectTimedOut(_ ac: UnsafeMutablePointer<redisAsyncContext>) {
        guard context == ac, !isConnected else { return }
        // Not connected yet, so hiredis calls no disconnect callback: free and retry here.
        context = nil
        redisAsyncFree(ac)
        scheduleReconnect("connect timed out")
    }

    fileprivate func connected(status: Int32, reason: String) {
        connectDeadline?.cancel()
        connectDeadline = nil
        if status == REDIS_OK {
            socketUp = true
            readyIfHandshakeDone()
        } else {
            // hiredis frees the context after this callback; no disconnect callback follows.
            context = nil
            scheduleReconnect(reason)
        }
    }

    private func handshakeReplied(_ ac: UnsafeMutablePointer<redisAsyncContext>, _ reply: RedisReply?) {
        guard context == ac, !handshakeFailed, let reply else { return }  // nil: the disconnect callback follows
        if let message = reply.errorMessage {
            handshakeFailed = true
            onHandshakeError?(message)
            redisAsyncDisconnect(ac)  // reported through the disconnect callback: reconnect with backoff
            return
        }
        handshakeLeft -= 1
        readyIfHandshakeDone()
    }

    private func readyIfHandshakeDone() {
        guard socketUp, handshakeLeft == 0, !handshakeFailed, !isConnected else { return }
        isConnected = true
        backoff.reset()
        onConnect?()
    }

    fileprivate func disconnected(reason: String) {
        context = nil
        scheduleReconnect(reason)
    }

    /// A nil reply means hiredis is tearing the context down: refuse new commands now,
    /// before the disconnect callback, so completions cannot queue onto a dying context.
    fileprivate func lostReply() {
        if isConnected { wasUp = true }
        isConnected = false
    }

    private func scheduleReconnect(_ reason: String) {
        let dropped = isConnected || wasUp
        isConnected = false
        wasUp = false
        let delay = backoff.next()
        retry?.cancel()
        retry = loop.after(ms: delay) { [weak self] in self?.connect() }
        onDisconnect?("\(reason) (reconnecting in \(delay) ms)", dropped)
    }

    fileprivate static func from(_ ac: UnsafePointer<redisAsyncContext>?) -> RedisConnection? {
        guard let data = ac?.pointee.data else { return nil }
        return Unmanaged<RedisConnection>.fromOpaque(data).takeUnretainedValue()
    }

    fileprivate static func reason(_ ac: UnsafePointer<redisAsyncContext>?) -> String {
        guard let ac, let s = ac.pointee.errstr else { return "connection closed" }
        let text = String(cString: s)
        return text.isEmpty ? "connection closed" : text
    }
}

// MARK: C callbacks (no captures: they find their Swift object through privdata or ac->data)

private let redisConnectCallback: @convention(c) (UnsafePointer<redisAsyncContext>?, Int32) -> Void = { ac, status in
    RedisConnection.from(ac)?.connected(status: status, reason: RedisConnection.reason(ac))
}

private let redisDisconnectCallback: @convention(c) (UnsafePointer<redisAsyncContext>?, Int32) -> Void = { ac, _ in
    RedisConnection.from(ac)?.disconnected(reason: RedisConnection.reason(ac))
}

private let redisReplyCallback: @convention(c) (UnsafeMutablePointer<redisAsyncContext>?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { ac, reply, privdata in
    let value = reply.map { copyReply($0.assumingMemoryBound(to: redisReply.self)) }
    let connection = ac.flatMap { RedisConnection.from(UnsafePointer($0)) }
    connection?.replied()
    if value == nil { connection?.lostReply() }
    guard let privdata else { return }
    let box = Unmanaged<ReplyBox>.fromOpaque(privdata).takeRetainedValue()
    box.completion(value)
}

private let redisPushCallback: @convention(c) (UnsafeMutablePointer<redisAsyncContext>?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, reply, privdata in
    // A nil reply comes when the context is freed; the disconnect callback reports that.
    guard let reply, let privdata else { return }
    let connection = Unmanaged<RedisConnection>.fromOpaque(privdata).takeUnretainedValue()
    connection.onPush?(copyReply(reply.assumingMemoryBound(to: redisReply.self)))
}

func copyReply(_ r: UnsafeMutablePointer<redisReply>) -> RedisReply {
    let p = r.pointee
    switch p.type {
    case REDIS_REPLY_STRING:
        guard let s = p.str else { return .bulk([]) }
        return .bulk(Array(UnsafeRawBufferPointer(start: s, count: p.len)))
    case REDIS_REPLY_STATUS:
        return .status(p.str.map { String(cString: $0) } ?? "")
    case REDIS_REPLY_ERROR:
        return .error(p.str.map { String(cString: $0) } ?? "")
    case REDIS_REPLY_INTEGER:
        return .integer(Int64(p.integer))
    case REDIS_REPLY_ARRAY:
        var items: [RedisReply] = []
        items.reserveCapacity(p.elements)
        for i in 0..<p.elements {
            if let e = p.element[i] { items.append(copyReply(e)) } else { items.append(.null) }
        }
        return .array(items)
    default:
        return .null
    }
}

private final class ReplyBox {
    let completion: RedisConnection.Completion
    init(_ completion: @escaping RedisConnection.Completion) { self.completion = completion }
}

/// hiredis's event hooks on a uv_poll_t. Written here rather than taken from
/// <hiredis/adapters/libuv.h> because Debian's 0.14 adapter drops poll errors: libuv
/// reports a refused connect or a reset socket as a poll error (POLLERR), the adapter
/// returns without telling hiredis, and the connection hangs forever. Here an error is
/// handed to hiredis as readable, so its read fails and it reports the loss.
final class RedisPoll {
    private let handle: UnsafeMutablePointer<uv_poll_t>
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var events: Int32 = 0

    private init(_ ac: UnsafeMutablePointer<redisAsyncContext>) {
        handle = .allocate(capacity: 1)
        context = ac
    }

    static func attach(_ ac: UnsafeMutablePointer<redisAsyncContext>, _ loop: UnsafeMutablePointer<uv_loop_t>) -> Bool {
        guard ac.pointee.ev.data == nil else { return false }
        let poll = RedisPoll(ac)
        guard uv_poll_init(loop, poll.handle, ac.pointee.c.fd) == 0 else {
            poll.handle.deallocate()
            return false
        }
        poll.handle.pointee.data = Unmanaged.passUnretained(poll).toOpaque()
        // hiredis owns the hook's reference; `cleanup` gives it back.
        ac.pointee.ev.data = Unmanaged.passRetained(poll).toOpaque()
        ac.pointee.ev.addRead = { RedisPoll.from($0)?.update(add: Int32(UV_READABLE.rawValue)) }
        ac.pointee.ev.delRead = { RedisPoll.from($0)?.update(remove: Int32(UV_READABLE.rawValue)) }
        ac.pointee.ev.addWrite = { RedisPoll.from($0)?.update(add: Int32(UV_WRITABLE.rawValue)) }
        ac.pointee.ev.delWrite = { RedisPoll.from($0)?.update(remove: Int32(UV_WRITABLE.rawValue)) }
        ac.pointee.ev.cleanup = { data in
            guard let data else { return }
            let poll = Unmanaged<RedisPoll>.fromOpaque(data)
            poll.takeUnretainedValue().close()
            poll.release()
        }
        return true
    }

    private static func from(_ data: UnsafeMutableRawPointer?) -> RedisPoll? {
        data.map { Unmanaged<RedisPoll>.fromOpaque($0).takeUnretainedValue() }
    }

    private func update(add: Int32 = 0, remove: Int32 = 0) {
        events = (events | add) & ~remove
        if events != 0 {
            uv_poll_start(handle, events, { h, status, ready in
                guard let h, let data = h.pointee.data else { return }
                Unmanaged<RedisPoll>.fromOpaque(data).takeUnretainedValue().ready(status: status, events: ready)
            })
        } else {
            uv_poll_stop(handle)
        }
    }

    private func ready(status: Int32, events ready: Int32) {
        guard let ac = context else { return }
        if status < 0 {
            redisAsyncHandleRead(ac)
            return
        }
        if ready & Int32(UV_READABLE.rawValue) != 0 { redisAsyncHandleRead(ac) }
        // Reading may have ended the connection (cleanup clears `context`).
        if let ac = context, ready & Int32(UV_WRITABLE.rawValue) != 0 { redisAsyncHandleWrite(ac) }
    }

    private func close() {
        context = nil
        handle.pointee.data = nil
        uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { h in h?.deallocate() }
    }
}
