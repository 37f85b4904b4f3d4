// EventLoop: one libuv loop and the per-loop machinery every connection shares:
// a read buffer, the list of connections with bytes to flush (flushed together just
// before the loop blocks, so writes coalesce), and the timer wheel driven by one
// repeating uv timer. All state here belongs to this loop's thread.
import CLibUV
import StarlingCore
#if canImport(Glibc)
import Glibc
#endif

public final class EventLoop {
    public let uv: UnsafeMutablePointer<uv_loop_t>
    /// Shared by every read on this loop: libuv fills it and the read callback consumes
    /// it before the next read, so idle connections own no read buffer.
    let readBuffer: UnsafeMutableRawPointer
    let readBufferSize = 64 * 1024
    var dirty: [Connection] = []
    /// Connections whose kernel buffer is full (a write is waiting in libuv): the only
    /// ones that can hold a large queue, so the global cap looks at these alone.
    var backlogged: [ObjectIdentifier: Connection] = [:]

    /// The connections with a write waiting for the kernel, for the global queue cap.
    public var backloggedConnections: Dictionary<ObjectIdentifier, Connection>.Values { backlogged.values }
    var wheel: TimerWheel<Connection>
    private let prepare: UnsafeMutablePointer<uv_prepare_t>
    private let ticker: UnsafeMutablePointer<uv_timer_t>
    private var tickHandlers: [(UInt64) -> Void] = []
    /// Work handed to this loop from other threads (async JWT checks, other loops).
    private let inbox: UnsafeMutablePointer<uv_async_t>
    private var inboxLock = pthread_mutex_t()
    private var inboxItems: [() -> Void] = []

    public init() {
        uv = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        uv_loop_init(uv)
        readBuffer = UnsafeMutableRawPointer.allocate(byteCount: readBufferSize, alignment: 16)
        prepare = .allocate(capacity: 1)
        ticker = .allocate(capacity: 1)
        inbox = .allocate(capacity: 1)
        pthread_mutex_init(&inboxLock, nil)
        wheel = TimerWheel(tickMs: 100, slotCount: 1024, nowMs: uv_now(uv))
        uv.pointee.data = Unmanaged.passUnretained(self).toOpaque()

        uv_prepare_init(uv, prepare)
        prepare.pointee.data = uv.pointee.data
        uv_prepare_start(prepare) { handle in
            EventLoop.from(handle!.pointee.loop).flushDirty()
        }
        uv_timer_init(uv, ticker)
        ticker.pointee.data = uv.pointee.data
        uv_timer_start(ticker, { handle in
            EventLoop.from(handle!.pointee.loop).tick()
        }, 100, 100)
        uv_async_init(uv, inbox) { handle in
            EventLoop.from(handle!.pointee.loop).drainInbox()
        }
        inbox.pointee.data = uv.pointee.data
        uv_unref(UnsafeMutableRawPointer(inbox).assumingMemoryBound(to: uv_handle_t.self))
    }

    /// Runs `body` on this loop's thread soon. The only call here safe from any thread.
    public func execute(_ body: @escaping () -> Void) {
        pthread_mutex_lock(&inboxLock)
        inboxItems.append(body)
        pthread_mutex_unlock(&inboxLock)
        uv_async_send(inbox)
    }

    private func drainInbox() {
        pthread_mutex_lock(&inboxLock)
        let items = inboxItems
        inboxItems.removeAll()
        pthread_mutex_unlock(&inboxLock)
        for item in items { item() }
    }

    static func from(_ loop: UnsafeMutablePointer<uv_loop_t>!) -> EventLoop {
        Unmanaged<EventLoop>.fromOpaque(loop.pointee.data).takeUnretainedValue()
    }

    /// Milliseconds of the loop's cached monotonic clock.
    public var nowMs: UInt64 { uv_now(uv) }

    /// Runs `handler` on every wheel tick (about every 100 ms) with the loop time.
    public func onTick(_ handler: @escaping (UInt64) -> Void) { tickHandlers.append(handler) }

    public func run() { uv_run(uv, UV_RUN_DEFAULT) }

    public func stop() { uv_stop(uv) }

    func markDirty(_ c: Connection) {
        guard !c.isDirty else { return }
        c.isDirty = true
        dirty.append(c)
    }

    private func flushDirty() {
        // Flushing may mark connections dirty again (a drained replay fetches its next
        // page), so swap the list first and loop until it stays empty.
        while !dirty.isEmpty {
            let batch = dirty
            dirty.removeAll(keepingCapacity: true)
            for c in batch {
                c.isDirty = false
                c.flush()
            }
        }
    }

    private func tick() {
        let now = nowMs
        for c in wheel.advance(toMs: now) { c.timerFired(nowMs: now) }
        for h in tickHandlers { h(now) }
    }

    /// Runs `body` when the process gets `signal` (SIGTERM, SIGINT).
    public func onSignal(_ signum: Int32, _ body: @escaping () -> Void) {
        let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
        uv_signal_init(uv, handle)
        handle.pointee.data = Unmanaged.passRetained(SignalBox(body)).toOpaque()
        uv_signal_start(handle, { h, _ in
            Unmanaged<SignalBox>.fromOpaque(h!.pointee.data).takeUnretainedValue().body()
        }, signum)
        uv_unref(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self))
    }

    /// Runs `body` once after `ms` on this loop.
    public func after(ms: UInt64, _ body: @escaping () -> Void) {
        let handle = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(uv, handle)
        handle.pointee.data = Unmanaged.passRetained(SignalBox(body)).toOpaque()
        uv_timer_start(handle, { h in
            let box = Unmanaged<SignalBox>.fromOpaque(h!.pointee.data)
            box.takeUnretainedValue().body()
            box.release()
            uv_close(UnsafeMutableRawPointer(h!).assumingMemoryBound(to: uv_handle_t.self)) { p in
                p?.deallocate()
            }
        }, ms, 0)
    }
}

final class SignalBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
